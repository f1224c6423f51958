//! Route insertions and deletions inside the FIB: fib_table_insert and
//! fib_table_delete (IPv4, every caller: rtnetlink, ioctl, kernel), fib6_add
//! and fib6_del (IPv6: every addition and removal, including those with no
//! request such as link down).
//!
//! fexit programs see arguments and return value at once; the kprobe path
//! captures the route at entry and completes it in the kretprobe.
use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use tracer_common::{
    Config, RouteEvent,
    af::{INET as AF_INET, INET6 as AF_INET6},
    op, source,
};

use crate::{
    args::{Fexit, fexit_arg, fexit_ret, fexit_slots, kprobe_arg, off_add},
    emit::send,
    maps::{ROUTE_PENDING, config},
    read::{kget, kget_ptr},
    task::current_tid,
};

/// Fill the netlink request identity from a `struct nl_info *`.
#[inline(always)]
fn fill_nlinfo(cfg: &Config, ev: &mut RouteEvent, nlinfo: *const u8) {
    let nlh = kget_ptr(nlinfo, cfg.nlinfo_nlh);
    ev.has_nlh = !nlh.is_null() as u8;
    ev.nl_seq = kget(nlh, cfg.nlh_seq);
    ev.nl_portid = kget(nlinfo, cfg.nlinfo_portid);
}

/// An IPv4 route from `struct fib_table *tb` and `struct fib_config *cfg`.
#[inline(always)]
fn route4(cfg: &Config, ev: &mut RouteEvent, tb: *const u8, fc: *const u8, operation: u8) {
    ev.op = operation;
    ev.family = AF_INET;
    ev.dst_len = kget(fc, cfg.cfg_dst_len);
    ev.rtype = kget(fc, cfg.cfg_type);
    ev.protocol = kget(fc, cfg.cfg_protocol);
    ev.scope = kget(fc, cfg.cfg_scope);
    ev.table = kget(tb, cfg.fib_table_id);
    ev.priority = kget(fc, cfg.cfg_priority);
    ev.oif = kget(fc, cfg.cfg_oif);
    let dst: [u8; 4] = kget(fc, cfg.cfg_dst);
    ev.dst[..4].copy_from_slice(&dst);
    ev.gw_family = kget(fc, cfg.cfg_gw_family);
    if ev.gw_family == AF_INET {
        let gw: [u8; 4] = kget(fc, cfg.cfg_gw4);
        ev.gw[..4].copy_from_slice(&gw);
    } else if ev.gw_family == AF_INET6 {
        ev.gw = kget(fc, cfg.cfg_gw6);
    }
    if cfg.cfg_nlinfo != tracer_common::NO_OFFSET {
        fill_nlinfo(cfg, ev, fc.wrapping_add(cfg.cfg_nlinfo as usize));
    }
}

/// An IPv6 route from `struct fib6_info *rt` and `struct nl_info *info`.
#[inline(always)]
fn route6(cfg: &Config, ev: &mut RouteEvent, rt: *const u8, info: *const u8, operation: u8) {
    ev.op = operation;
    ev.family = AF_INET6;
    ev.dst = kget(rt, cfg.f6_dst_addr);
    ev.dst_len = kget(rt, cfg.f6_dst_plen);
    ev.rtype = kget(rt, cfg.f6_type);
    ev.protocol = kget(rt, cfg.f6_protocol);
    ev.priority = kget(rt, cfg.f6_metric);
    ev.table = kget(kget_ptr(rt, cfg.f6_table), cfg.f6_table_id);
    // Routes using a nexthop object keep device and gateway there.
    if kget_ptr(rt, cfg.f6_nh_obj).is_null() {
        let nh = cfg.f6_nh;
        ev.oif = kget(kget_ptr(rt, off_add(nh, cfg.nhc_dev)), cfg.dev_ifindex);
        ev.gw_family = kget(rt, off_add(nh, cfg.nhc_gw_family));
        if ev.gw_family == AF_INET6 {
            ev.gw = kget(rt, off_add(nh, cfg.nhc_gw));
        } else if ev.gw_family == AF_INET {
            let gw: [u8; 4] = kget(rt, off_add(nh, cfg.nhc_gw));
            ev.gw[..4].copy_from_slice(&gw);
        }
    }
    if !info.is_null() {
        fill_nlinfo(cfg, ev, info);
    }
}

#[inline(always)]
fn submit(cfg: &Config, ev: &mut RouteEvent, src: u8, ret: i32) {
    ev.ret = ret;
    send(ev, cfg, src);
}

#[inline(always)]
fn fexit_route4(ctx: &FExitContext, operation: u8) -> Option<()> {
    let cfg = config()?;
    let slots = fexit_slots(if operation == op::DEL {
        Fexit::Route4Del
    } else {
        Fexit::Route4Add
    });
    let tb = fexit_arg(ctx, slots.first)?;
    let fc = fexit_arg(ctx, slots.second)?;
    let ret = fexit_ret(ctx, &slots);
    let mut ev = RouteEvent::default();
    route4(cfg, &mut ev, tb, fc, operation);
    submit(cfg, &mut ev, source::FENTRY, ret);
    Some(())
}

/// kprobe argument indices (rt, info) of fib6_del or fib6_add.
#[inline(always)]
fn route6_args(cfg: &Config, operation: u8) -> (u32, u32) {
    if operation == op::DEL {
        (cfg.arg_f6del_rt, cfg.arg_f6del_info)
    } else {
        (cfg.arg_f6add_rt, cfg.arg_f6add_info)
    }
}

#[inline(always)]
fn fexit_route6(ctx: &FExitContext, operation: u8) -> Option<()> {
    let cfg = config()?;
    let slots = fexit_slots(if operation == op::DEL {
        Fexit::Route6Del
    } else {
        Fexit::Route6Add
    });
    let rt = fexit_arg(ctx, slots.first)?;
    let info = fexit_arg(ctx, slots.second).unwrap_or(core::ptr::null());
    let ret = fexit_ret(ctx, &slots);
    let mut ev = RouteEvent::default();
    route6(cfg, &mut ev, rt, info, operation);
    submit(cfg, &mut ev, source::FENTRY, ret);
    Some(())
}

#[fexit(function = "fib_table_delete")]
pub fn fexit_fib_table_delete(ctx: FExitContext) -> i32 {
    let _ = fexit_route4(&ctx, op::DEL);
    0
}

#[fexit(function = "fib_table_insert")]
pub fn fexit_fib_table_insert(ctx: FExitContext) -> i32 {
    let _ = fexit_route4(&ctx, op::ADD);
    0
}

#[fexit(function = "fib6_del")]
pub fn fexit_fib6_del(ctx: FExitContext) -> i32 {
    let _ = fexit_route6(&ctx, op::DEL);
    0
}

#[fexit(function = "fib6_add")]
pub fn fexit_fib6_add(ctx: FExitContext) -> i32 {
    let _ = fexit_route6(&ctx, op::ADD);
    0
}

/// kprobe entry: capture the route while the arguments are valid.
#[inline(always)]
fn kprobe_route(ctx: &ProbeContext, v6: bool, operation: u8) -> Option<()> {
    let cfg = config()?;
    let mut ev = RouteEvent::default();
    if v6 {
        let (rt_arg, info_arg) = route6_args(cfg, operation);
        let rt = kprobe_arg(ctx, cfg, rt_arg)?;
        let info = kprobe_arg(ctx, cfg, info_arg).unwrap_or(core::ptr::null());
        route6(cfg, &mut ev, rt, info, operation);
    } else {
        let tb = kprobe_arg(ctx, cfg, cfg.arg_f4_tb)?;
        let fc = kprobe_arg(ctx, cfg, cfg.arg_f4_cfg)?;
        route4(cfg, &mut ev, tb, fc, operation);
    }
    ROUTE_PENDING.insert(&current_tid(), &ev, 0).ok()
}

/// kretprobe: complete the captured route with the return value.
#[inline(always)]
fn complete_route(ctx: &RetProbeContext) -> Option<()> {
    let cfg = config()?;
    let tid = current_tid();
    // SAFETY: the value is copied out before the entry is removed.
    let mut ev = *unsafe { ROUTE_PENDING.get(&tid) }?;
    let _ = ROUTE_PENDING.remove(&tid);
    submit(cfg, &mut ev, source::KPROBE, ctx.ret::<i64>() as i32);
    Some(())
}

#[kprobe]
pub fn kprobe_fib_table_delete(ctx: ProbeContext) -> u32 {
    let _ = kprobe_route(&ctx, false, op::DEL);
    0
}

#[kprobe]
pub fn kprobe_fib_table_insert(ctx: ProbeContext) -> u32 {
    let _ = kprobe_route(&ctx, false, op::ADD);
    0
}

#[kprobe]
pub fn kprobe_fib6_del(ctx: ProbeContext) -> u32 {
    let _ = kprobe_route(&ctx, true, op::DEL);
    0
}

#[kprobe]
pub fn kprobe_fib6_add(ctx: ProbeContext) -> u32 {
    let _ = kprobe_route(&ctx, true, op::ADD);
    0
}

/// Shared by every route kretprobe: the pending entry knows what it was.
#[kretprobe]
pub fn kretprobe_route(ctx: RetProbeContext) -> u32 {
    let _ = complete_route(&ctx);
    0
}
