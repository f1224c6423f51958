//! Rule additions and deletions. The kernel functions that receive a rule
//! request (fib_nl_newrule/fib_nl_delrule, or fib_newrule/fib_delrule on
//! kernels where the former are inlined away) get the request's netlink
//! message; it is copied from kernel memory with the function's return value
//! and decoded in userspace like a request read on the tracepoint path.
use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use tracer_common::{Config, RuleMsgEvent, source, syscall};

use crate::{
    args::{Fexit, fexit_arg, fexit_ret, fexit_slots, kprobe_arg},
    emit::reserve,
    maps::{PTR_PENDING, config},
    read::kread,
    task::current_tid,
};

/// Marker in PTR_PENDING's second slot for a pending rule call.
pub const PENDING_RULE: u64 = 1;

/// Copy the rule request at `nlh` (kernel memory) with the function's result.
#[inline(always)]
fn emit_rule(cfg: &Config, nlh: *const u8, ret: i32, src: u8) -> Option<()> {
    let len: u32 = kread(nlh, cfg.nlh_len)?;
    let mut entry = reserve::<RuleMsgEvent>(cfg, src)?;
    // SAFETY: RuleMsgEvent is transparent over the NlMsgEvent it holds.
    let ev = entry.as_mut_ptr() as *mut tracer_common::NlMsgEvent;
    let n = crate::netlink_tp::copy_len(len as u64);
    unsafe {
        (*ev).syscall = syscall::KERNEL;
        (*ev).truncated = (len > n) as u8;
        (*ev)._pad0 = 0;
        (*ev).fd = -1;
        (*ev).ret = ret;
        let rc = bpf_probe_read_kernel((*ev).data.as_mut_ptr() as *mut _, n, nlh as *const _);
        (*ev).data_len = if rc == 0 { n } else { 0 };
    }
    entry.submit(0);
    Some(())
}

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

#[inline(always)]
fn fexit_rule(ctx: &FExitContext, del: bool) -> Option<()> {
    let cfg = config()?;
    // Each program's slots are those of the function it is attached to.
    let slots = fexit_slots(if del { Fexit::RuleDel } else { Fexit::RuleAdd });
    let nlh = fexit_arg(ctx, slots.first)?;
    let ret = fexit_ret(ctx, &slots);
    emit_rule(cfg, nlh, ret, source::FENTRY)
}

#[fexit]
pub fn fexit_rule_del(ctx: FExitContext) -> i32 {
    let _ = fexit_rule(&ctx, true);
    0
}

#[fexit]
pub fn fexit_rule_add(ctx: FExitContext) -> i32 {
    let _ = fexit_rule(&ctx, false);
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
        emit_rule(
            cfg,
            nlh as *const u8,
            ctx.ret::<i64>() as i32,
            source::KPROBE,
        )
    })();
    0
}
