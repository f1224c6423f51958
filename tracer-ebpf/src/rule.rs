//! Rule additions and deletions. The kernel functions that receive a rule
//! request (fib_nl_newrule/fib_nl_delrule, or fib_newrule/fib_delrule on
//! kernels where the former are inlined away) get the request's netlink
//! message; it is copied from kernel memory with the function's return value
//! (`handler_msg`) and decoded in userspace like a request read on the
//! tracepoint path.
use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use tracer_common::Config;

use crate::{
    args::{Fexit, kprobe_arg},
    handler_msg::{fexit_handler_msg, kretprobe_handler_msg},
    maps::{PTR_PENDING, config},
    task::current_tid,
};

/// Marker in PTR_PENDING's second slot for a pending rule call.
pub const PENDING_RULE: u64 = 1;

/// kprobe argument index of `nlh` in the attached deletion or addition
/// function.
#[inline(always)]
fn nlh_arg(cfg: &Config, del: bool) -> u32 {
    if del {
        cfg.rule_del_nlh_arg
    } else {
        cfg.rule_add_nlh_arg
    }
}

#[fexit]
pub fn fexit_rule_del(ctx: FExitContext) -> i32 {
    // Each program's slots are those of the function it is attached to.
    let _ = fexit_handler_msg(&ctx, Fexit::RuleDel);
    0
}

#[fexit]
pub fn fexit_rule_add(ctx: FExitContext) -> i32 {
    let _ = fexit_handler_msg(&ctx, Fexit::RuleAdd);
    0
}

#[inline(always)]
fn kprobe_rule(ctx: &ProbeContext, del: bool) -> Option<()> {
    let cfg = config()?;
    let arg = nlh_arg(cfg, del);
    let nlh = kprobe_arg(ctx, cfg, arg)?;
    PTR_PENDING
        .insert(&current_tid(), &[nlh as u64, PENDING_RULE], 0)
        .ok()
}

#[kprobe]
pub fn kprobe_rule_del(ctx: ProbeContext) -> u32 {
    let _ = kprobe_rule(&ctx, true);
    0
}

#[kprobe]
pub fn kprobe_rule_add(ctx: ProbeContext) -> u32 {
    let _ = kprobe_rule(&ctx, false);
    0
}

#[kretprobe]
pub fn kretprobe_rule(ctx: RetProbeContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let tid = current_tid();
        // SAFETY: the value is copied out before the entry is removed.
        let [nlh, marker] = *unsafe { PTR_PENDING.get(&tid) }?;
        if marker != PENDING_RULE {
            return None;
        }
        let _ = PTR_PENDING.remove(&tid);
        kretprobe_handler_msg(&ctx, cfg, nlh)
    })();
    0
}
