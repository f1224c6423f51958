//! Presentation: text and JSON lines, escaping of untrusted strings.
