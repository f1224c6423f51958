//! fib_table_flush: IPv4 routes removed without any netlink request (link
//! down, address removal, namespace exit). The kernel sends no RTM_DELROUTE
//! for them; this event names the table, the count and the task whose action
//! caused the flush, and userspace re-reads the table to name each route.
use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use tracer_common::{Config, FlushEvent, source};

use crate::{
    args::{Fexit, fexit_arg, fexit_ret, fexit_slots, kprobe_arg},
    emit::send,
    maps::{PTR_PENDING, config},
    read::kget,
    task::current_tid,
};

/// Marker in PTR_PENDING's second slot: flush_all is stored as marker - 2.
const PENDING_FLUSH: u64 = 2;

#[inline(always)]
fn emit_flush(cfg: &Config, tb: *const u8, flush_all: u8, removed: i32, src: u8) -> Option<()> {
    let mut ev = FlushEvent::default();
    ev.table = kget(tb, cfg.fib_table_id);
    ev.removed = removed;
    ev.flush_all = flush_all;
    send(&mut ev, cfg, src);
    Some(())
}

#[fexit]
pub fn fexit_fib_table_flush(ctx: FExitContext) -> i32 {
    let _ = (|| {
        let cfg = config()?;
        let slots = fexit_slots(Fexit::Flush);
        let tb = fexit_arg(&ctx, slots.first)?;
        let all = fexit_arg(&ctx, slots.second)
            .map(|v| v as u64 as u8)
            .unwrap_or(0);
        let ret = fexit_ret(&ctx, &slots);
        emit_flush(cfg, tb, all, ret, source::FENTRY)
    })();
    0
}

#[kprobe]
pub fn kprobe_fib_table_flush(ctx: ProbeContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let tb = kprobe_arg(&ctx, cfg, cfg.arg_flush_tb)?;
        let all = kprobe_arg(&ctx, cfg, cfg.arg_flush_all)
            .map(|v| v as u64 as u8)
            .unwrap_or(0);
        PTR_PENDING
            .insert(&current_tid(), &[tb as u64, PENDING_FLUSH + all as u64], 0)
            .ok()
    })();
    0
}

#[kretprobe]
pub fn kretprobe_fib_table_flush(ctx: RetProbeContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let tid = current_tid();
        // SAFETY: the value is copied out before the entry is removed.
        let [tb, marker] = *unsafe { PTR_PENDING.get(&tid) }?;
        if marker < PENDING_FLUSH {
            return None;
        }
        let _ = PTR_PENDING.remove(&tid);
        let all = (marker - PENDING_FLUSH) as u8;
        emit_flush(
            cfg,
            tb as *const u8,
            all,
            ctx.ret::<i64>() as i32,
            source::KPROBE,
        )
    })();
    0
}
