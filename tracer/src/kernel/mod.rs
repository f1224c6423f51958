//! Facts about the running kernel: BTF member offsets, tracefs format files,
//! kallsyms, and which attach mechanisms the kernel allows.
//!
//! Nothing in here hard-codes a kernel layout: every offset comes from the
//! kernel's own BTF (`/sys/kernel/btf/vmlinux`) or tracefs format files.

pub mod btf;
pub mod features;
pub mod fexit_args;
pub mod kallsyms;
pub mod offsets;
pub mod packet_offsets;
mod sys;
pub mod tracefs;

pub use btf::Btf;
pub use features::{Feature, KernelFeatures};
pub use kallsyms::Kallsyms;
pub use tracefs::Tracefs;
