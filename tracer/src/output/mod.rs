//! Presentation: text and JSON lines, pcap.
pub mod fanout;
pub mod filter;
pub mod pcap;
pub mod sink;
pub mod text;
mod text_forensic;
