//! Placeholder: filled in by the schema drift test.
