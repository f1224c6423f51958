//! Where each fexit program finds what it reads in its context.
//!
//! An fexit program's context is an array of u64: the traced function's
//! arguments in order, then its return value. The verifier lets a program
//! load from it only at an offset fixed in the instruction, so the slot
//! numbers (which userspace reads from the kernel's BTF) are a read-only
//! global of the eBPF object (`FEXIT_ARGS`, in `.rodata`), written before
//! the object is loaded: the verifier sees each one as a constant and
//! follows only the load at that slot. This needs no helper, so it works
//! on every kernel with BPF trampolines (`bpf_get_func_arg` and
//! `bpf_get_func_ret` came only in Linux 5.17).

use crate::NO_OFFSET;

/// Slots in the fexit context: at most 12 arguments (the kernel's
/// MAX_BPF_FUNC_ARGS), then the return value.
pub const FEXIT_CTX_SLOTS: u32 = 13;

/// The slots one fexit program reads. [`NO_OFFSET`] where unresolved.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FexitSlots {
    /// The first argument the program reads (`tb`, `rt`, `nlh`).
    pub first: u32,
    /// The second (`cfg`, `info`, `flush_all`; unused for rules and nexthops).
    pub second: u32,
    /// The return value: the traced function's argument count.
    pub ret: u32,
}

impl FexitSlots {
    pub const UNRESOLVED: Self = Self {
        first: NO_OFFSET,
        second: NO_OFFSET,
        ret: NO_OFFSET,
    };
}

/// The slots of every fexit program, each for the function it is attached
/// to on this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FexitArgs {
    /// fib_table_delete(net, tb, cfg, extack): tb, cfg.
    pub route4_del: FexitSlots,
    /// fib_table_insert(net, tb, cfg, extack): tb, cfg.
    pub route4_add: FexitSlots,
    /// fib6_del(rt, info): rt, info.
    pub route6_del: FexitSlots,
    /// fib6_add(root, rt, info, extack): rt, info.
    pub route6_add: FexitSlots,
    /// fib_table_flush(net, tb, flush_all): tb, flush_all.
    pub flush: FexitSlots,
    /// The attached rule-deletion function: nlh.
    pub rule_del: FexitSlots,
    /// The attached rule-addition function: nlh.
    pub rule_add: FexitSlots,
    /// rtm_del_nexthop(skb, nlh, extack): nlh.
    pub nexthop_del: FexitSlots,
    /// rtm_new_nexthop(skb, nlh, extack): nlh.
    pub nexthop_add: FexitSlots,
}

impl FexitArgs {
    /// Every slot unresolved.
    pub const fn unresolved() -> Self {
        Self {
            route4_del: FexitSlots::UNRESOLVED,
            route4_add: FexitSlots::UNRESOLVED,
            route6_del: FexitSlots::UNRESOLVED,
            route6_add: FexitSlots::UNRESOLVED,
            flush: FexitSlots::UNRESOLVED,
            rule_del: FexitSlots::UNRESOLVED,
            rule_add: FexitSlots::UNRESOLVED,
            nexthop_del: FexitSlots::UNRESOLVED,
            nexthop_add: FexitSlots::UNRESOLVED,
        }
    }
}
