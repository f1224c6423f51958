//! The request message an rtnetlink handler received, copied from kernel
//! memory with the handler's return value into a [`RuleMsgEvent`] record:
//! shared by the rule hooks (`rule`) and the nexthop hooks (`nexthop`).
//! Userspace decodes whatever rtnetlink message the copy holds, like a
//! request read on the tracepoint path.
use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    programs::{FExitContext, RetProbeContext},
};
use tracer_common::{Config, RuleMsgEvent, source, syscall};

use crate::{
    args::{Fexit, fexit_arg, fexit_ret, fexit_slots},
    emit::send_nl_copy,
    maps::config,
    read::kread,
};

/// Copy the request message at `nlh` (kernel memory) with the function's
/// result.
#[inline(always)]
pub fn emit_handler_msg(cfg: &Config, nlh: *const u8, ret: i32, src: u8) -> Option<()> {
    let len: u32 = kread(nlh, cfg.nlh_len)?;
    // RuleMsgEvent is transparent over the NlMsgEvent it holds.
    send_nl_copy::<RuleMsgEvent>(cfg, src, |ev| {
        let n = crate::netlink_tp::copy_len(len as u64);
        // SAFETY: `ev` is the CPU's scratch record, `n` below its data's
        // size.
        unsafe {
            (*ev).syscall = syscall::KERNEL;
            (*ev).truncated = (len > n) as u8;
            (*ev)._pad0 = 0;
            (*ev).fd = -1;
            (*ev).ret = ret;
            let rc = bpf_probe_read_kernel((*ev).data.as_mut_ptr() as *mut _, n, nlh as *const _);
            (*ev).data_len = if rc == 0 { n } else { 0 };
            (*ev).data_len
        }
    })
}

/// An fexit program on a handler: `nlh` and the return value at the slots
/// of the function `which` is attached to.
#[inline(always)]
pub fn fexit_handler_msg(ctx: &FExitContext, which: Fexit) -> Option<()> {
    let cfg = config()?;
    let slots = fexit_slots(which);
    let nlh = fexit_arg(ctx, slots.first)?;
    let ret = fexit_ret(ctx, &slots);
    emit_handler_msg(cfg, nlh, ret, source::FENTRY)
}

/// A kretprobe on a handler: the `nlh` its kprobe saved, with the return
/// value.
#[inline(always)]
pub fn kretprobe_handler_msg(ctx: &RetProbeContext, cfg: &Config, nlh: u64) -> Option<()> {
    emit_handler_msg(
        cfg,
        nlh as *const u8,
        ctx.ret::<i64>() as i32,
        source::KPROBE,
    )
}
