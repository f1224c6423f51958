//! Presentation: text and JSON lines, escaping of untrusted strings.
pub mod escape;
pub mod sink;
pub mod text;
