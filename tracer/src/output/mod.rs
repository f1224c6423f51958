//! Presentation: text and JSON lines, escaping of untrusted strings, pcap.
pub mod escape;
pub mod fanout;
pub mod pcap;
pub mod sink;
pub mod text;
mod text_forensic;
