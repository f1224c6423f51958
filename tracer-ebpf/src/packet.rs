//! The packet path: packets received on or queued to a watched interface
//! (net:netif_receive_skb, net:net_dev_queue) and the FIB lookups made for
//! packets that arrived on one (fib:fib_table_lookup,
//! fib6:fib6_table_lookup).
//!
//! Filtering happens here, first: a packet costs a map lookup on
//! (namespace, ifindex) and nothing more unless its interface is watched.
//! Only IPv4 and IPv6 packets are copied, from the IP header on, up to
//! [`PKT_SNAP`] bytes; userspace decodes the headers.
//!
//! Packet records are submitted without waking userspace (a wake-up per
//! packet would cost more than the copy); userspace drains the ring on a
//! short timer, and a wake-up is forced once a backlog builds up.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_ktime_get_boot_ns, generated::bpf_probe_read_kernel},
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
};
use tracer_common::{
    EventHeader, FibLookupEvent, NO_OFFSET, PKT_SNAP, PacketConfig, PacketEvent, WatchKey, dir,
    kind, source,
};

use crate::{
    maps::{EVENTS, count_drop},
    read::{kget, kget_ptr},
};

/// Offsets for these programs; index 0.
#[map]
pub static PKT_CONFIG: Array<PacketConfig> = Array::with_max_entries(1, 0);

/// The watched interfaces (value unused).
#[map]
pub static WATCH_IFACES: HashMap<WatchKey, u8> = HashMap::with_max_entries(256, 0);

/// Per CPU: the watched interface of the last packet received on this CPU.
/// The FIB lookups for a received packet run on the same CPU, inside the
/// same receive call, so they are attributed to that interface's namespace.
#[map]
static RX_LAST: PerCpuArray<WatchKey> = PerCpuArray::with_max_entries(1, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// Backlog (bytes) after which a packet record wakes userspace.
const WAKE_BACKLOG: u64 = 1 << 20;

#[inline(always)]
fn submit_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKE_BACKLOG {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// A header for a record that is not about a task.
#[inline(always)]
fn header(kind: u16, len: usize, netns: u32) -> EventHeader {
    EventHeader {
        kind,
        source: source::TRACEPOINT,
        len: len as u32,
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        netns,
        ..EventHeader::default()
    }
}

/// The skb argument of a classic net tracepoint.
#[inline(always)]
fn tp_skb(ctx: &TracePointContext, direction: u8) -> Option<*const u8> {
    let cfg = PKT_CONFIG.get(0)?;
    let tp_off = if direction == dir::RX {
        cfg.tp_rx_skb
    } else {
        cfg.tp_tx_skb
    };
    if tp_off == NO_OFFSET {
        return None;
    }
    // SAFETY: offset from the tracepoint's format file.
    let skb: u64 = unsafe { ctx.read_at(tp_off as usize) }.ok()?;
    Some(skb as *const u8)
}

#[inline(always)]
fn packet(skb: *const u8, direction: u8) -> Option<()> {
    let cfg = PKT_CONFIG.get(0)?;
    let dev = kget_ptr(skb, cfg.skb_dev);
    let key = WatchKey {
        netns: kget(kget_ptr(dev, cfg.dev_net), cfg.net_inum),
        ifindex: kget(dev, cfg.dev_ifindex),
    };
    // SAFETY: the value is not used.
    unsafe { WATCH_IFACES.get(&key) }?;
    let protocol = u16::from_be(kget::<u16>(skb, cfg.skb_protocol));
    if protocol != ETH_P_IP && protocol != ETH_P_IPV6 {
        return None;
    }
    if direction == dir::RX
        && let Some(last) = RX_LAST.get_ptr_mut(0)
    {
        // SAFETY: a per-CPU slot; programs do not migrate while running.
        unsafe { *last = key };
    }
    // Received packets: the link-layer header has been pulled, data is the
    // IP header. Queued packets: data may be the link-layer header, so start
    // at the network header.
    let l3 = if direction == dir::RX {
        kget_ptr(skb, cfg.skb_data)
    } else {
        let head = kget_ptr(skb, cfg.skb_head);
        let nh: u16 = kget(skb, cfg.skb_network_header);
        head.wrapping_add(nh as usize)
    };
    let Some(mut entry) = EVENTS.reserve::<PacketEvent>(0) else {
        count_drop();
        return None;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reservation; every field is written before submit.
    unsafe {
        (*ev).hdr = header(kind::PACKET, core::mem::size_of::<PacketEvent>(), key.netns);
        (*ev).ifindex = key.ifindex;
        (*ev).skb_len = kget(skb, cfg.skb_len);
        (*ev).mark = kget(skb, cfg.skb_mark);
        (*ev).dir = direction;
        (*ev)._pad0 = 0;
        (*ev).protocol = protocol;
        (*ev)._pad1 = 0;
        let rc = bpf_probe_read_kernel(
            (*ev).data.as_mut_ptr() as *mut _,
            PKT_SNAP as u32,
            l3 as *const _,
        );
        (*ev).cap_len = if rc == 0 { PKT_SNAP as u32 } else { 0 };
    }
    entry.submit(submit_flags());
    Some(())
}

// Raw tracepoints (preferred): the skb is the first argument, and the
// kernel does not build the classic tracepoint's record (with its copy of
// the device name) for every packet on the machine.

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn pkt_rx_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = packet(skb as *const u8, dir::RX);
    0
}

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn pkt_tx_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = packet(skb as *const u8, dir::TX);
    0
}

// Classic tracepoints: the fallback where raw tracepoints are refused.

#[tracepoint(category = "net", name = "netif_receive_skb")]
pub fn pkt_rx(ctx: TracePointContext) -> u32 {
    let _ = tp_skb(&ctx, dir::RX).and_then(|skb| packet(skb, dir::RX));
    0
}

#[tracepoint(category = "net", name = "net_dev_queue")]
pub fn pkt_tx(ctx: TracePointContext) -> u32 {
    let _ = tp_skb(&ctx, dir::TX).and_then(|skb| packet(skb, dir::TX));
    0
}

/// Offsets of one FIB lookup tracepoint's fields.
struct FibFields {
    table: u32,
    err: u32,
    oif: u32,
    iif: u32,
    proto: u32,
    src: u32,
    dst: u32,
    sport: u32,
    dport: u32,
    dev: u32,
}

#[inline(always)]
fn read_tp<T: Copy + Default>(ctx: &TracePointContext, off: u32) -> T {
    if off == NO_OFFSET {
        return T::default();
    }
    // SAFETY: offset from the tracepoint's format file.
    unsafe { ctx.read_at::<T>(off as usize) }.unwrap_or_default()
}

#[inline(always)]
fn lookup(ctx: &TracePointContext, family: u8, f: &FibFields) -> Option<()> {
    if f.iif == NO_OFFSET {
        return None;
    }
    let iif: i32 = read_tp(ctx, f.iif);
    let last = RX_LAST.get(0)?;
    if iif <= 0 || last.ifindex != iif as u32 {
        return None;
    }
    let mut ev = FibLookupEvent {
        hdr: header(
            kind::FIB_LOOKUP,
            core::mem::size_of::<FibLookupEvent>(),
            last.netns,
        ),
        table: read_tp(ctx, f.table),
        err: read_tp(ctx, f.err),
        oif: read_tp(ctx, f.oif),
        iif,
        family,
        proto: read_tp(ctx, f.proto),
        sport: read_tp(ctx, f.sport),
        dport: read_tp(ctx, f.dport),
        dev: read_tp(ctx, f.dev),
        ..FibLookupEvent::default()
    };
    if family == AF_INET {
        let s: [u8; 4] = read_tp(ctx, f.src);
        let d: [u8; 4] = read_tp(ctx, f.dst);
        ev.src[..4].copy_from_slice(&s);
        ev.dst[..4].copy_from_slice(&d);
    } else {
        ev.src = read_tp(ctx, f.src);
        ev.dst = read_tp(ctx, f.dst);
    }
    if EVENTS
        .output::<FibLookupEvent>(&ev, submit_flags())
        .is_err()
    {
        count_drop();
    }
    Some(())
}

#[tracepoint(category = "fib", name = "fib_table_lookup")]
pub fn fib4_lookup(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let c = PKT_CONFIG.get(0)?;
        let f = FibFields {
            table: c.tp4_table,
            err: c.tp4_err,
            oif: c.tp4_oif,
            iif: c.tp4_iif,
            proto: c.tp4_proto,
            src: c.tp4_src,
            dst: c.tp4_dst,
            sport: c.tp4_sport,
            dport: c.tp4_dport,
            dev: c.tp4_dev,
        };
        lookup(&ctx, AF_INET, &f)
    })();
    0
}

#[tracepoint(category = "fib6", name = "fib6_table_lookup")]
pub fn fib6_lookup(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let c = PKT_CONFIG.get(0)?;
        let f = FibFields {
            table: c.tp6_table,
            err: c.tp6_err,
            oif: c.tp6_oif,
            iif: c.tp6_iif,
            proto: c.tp6_proto,
            src: c.tp6_src,
            dst: c.tp6_dst,
            sport: c.tp6_sport,
            dport: c.tp6_dport,
            dev: c.tp6_dev,
        };
        lookup(&ctx, AF_INET6, &f)
    })();
    0
}
