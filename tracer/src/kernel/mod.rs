//! Facts about the running kernel: BTF member offsets, tracefs format files,
//! kallsyms, and which attach mechanisms the kernel allows.
//!
//! Nothing in here hard-codes a kernel layout: every offset comes from the
//! kernel's own BTF (`/sys/kernel/btf/vmlinux`) or tracefs format files.
// Until the rest of the tracer calls into this module.
#![allow(dead_code, unused_imports)]

pub mod btf;
pub mod features;
pub mod kallsyms;
pub mod offsets;
pub mod packet_offsets;
mod sys;
pub mod tracefs;

pub use btf::{Btf, BtfError};
pub use features::{Feature, KernelFeatures, LockdownMode};
pub use kallsyms::{FilterFunctions, Kallsyms, KallsymsError};
pub use offsets::{RuleFunction, RuleFunctionError, RuleFunctions, resolve, rule_functions};
pub use tracefs::{EventFormat, Field, FieldLoc, Tracefs, TracefsError};
