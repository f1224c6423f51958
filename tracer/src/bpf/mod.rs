//! The eBPF side as userspace sees it: the attach ladder and the loader.
pub mod ladder;
pub mod loader;
pub mod ring;
