//! The eBPF side as userspace sees it: the attach ladder, the loader, and
//! attaching the packet programs.
pub mod classic_tc;
pub mod ladder;
pub mod loader;
pub mod orphan_tc;
pub mod packet_arming;
pub mod packet_hooks;
pub mod ring;
