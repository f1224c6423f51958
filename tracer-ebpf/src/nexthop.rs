//! Nexthop object additions (and replacements) and deletions: the
//! rtnetlink handlers rtm_new_nexthop/rtm_del_nexthop (Linux 5.3+) get the
//! request's netlink message, copied from kernel memory with the handler's
//! return value (`handler_msg`), as for rules.
//!
//! The kprobe path keeps `nlh` in a map of its own ([`NH_PENDING`]), not in
//! PTR_PENDING: deleting a nexthop that routes use runs fib_table_flush
//! (through fib_flush) inside rtm_del_nexthop, and the flush kprobe's entry
//! for the same thread would take the place of the nexthop's.
use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe, map},
    maps::HashMap,
    programs::{FExitContext, ProbeContext, RetProbeContext},
};

use crate::{
    args::{Fexit, kprobe_arg},
    handler_msg::{fexit_handler_msg, kretprobe_handler_msg},
    maps::config,
    task::current_tid,
};

/// kprobe path: the `nlh` of a nexthop handler, saved at entry, by thread id.
#[map]
static NH_PENDING: HashMap<u32, u64> = HashMap::with_max_entries(4096, 0);

#[fexit]
pub fn fexit_nexthop_add(ctx: FExitContext) -> i32 {
    let _ = fexit_handler_msg(&ctx, Fexit::NexthopAdd);
    0
}

#[fexit]
pub fn fexit_nexthop_del(ctx: FExitContext) -> i32 {
    let _ = fexit_handler_msg(&ctx, Fexit::NexthopDel);
    0
}

#[inline(always)]
fn kprobe_nexthop(ctx: &ProbeContext, del: bool) -> Option<()> {
    let cfg = config()?;
    let arg = if del {
        cfg.nexthop_del_nlh_arg
    } else {
        cfg.nexthop_add_nlh_arg
    };
    let nlh = kprobe_arg(ctx, cfg, arg)?;
    NH_PENDING.insert(&current_tid(), &(nlh as u64), 0).ok()
}

#[kprobe]
pub fn kprobe_nexthop_add(ctx: ProbeContext) -> u32 {
    let _ = kprobe_nexthop(&ctx, false);
    0
}

#[kprobe]
pub fn kprobe_nexthop_del(ctx: ProbeContext) -> u32 {
    let _ = kprobe_nexthop(&ctx, true);
    0
}

/// Shared by both nexthop handlers: the pending `nlh` is the request's.
#[kretprobe]
pub fn kretprobe_nexthop(ctx: RetProbeContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let tid = current_tid();
        // SAFETY: the value is copied out before the entry is removed.
        let nlh = *unsafe { NH_PENDING.get(&tid) }?;
        let _ = NH_PENDING.remove(&tid);
        kretprobe_handler_msg(&ctx, cfg, nlh)
    })();
    0
}
