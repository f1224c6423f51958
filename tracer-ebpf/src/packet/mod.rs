//! The packet path: packets received on or queued to a watched interface
//! (netif_receive_skb, net_dev_queue) and the FIB lookups made for packets
//! that arrived on one (fib:fib_table_lookup, fib6:fib6_table_lookup).
//!
//! - `watch`: is the packet's interface watched? Asked for every packet on
//!   the machine, so it is the cheap part: a bitmap of ifindexes first.
//! - `pair`: a reception on a watched interface is kept in a small
//!   direct-mapped table; a transmission on one is looked up there, and
//!   only a transmission that may be a looped copy of a reception is sent
//!   to userspace, with the reception and its FIB lookups (`fib`). ICMP
//!   time-exceeded messages are sent as they are seen.
//! - `kmem`: the offsets, and reading the skb with plain loads (BTF
//!   tracepoints) or bpf_probe_read_kernel (raw and classic tracepoints).
//! - `emit`: ring-buffer records and wake-ups.
//!
//! Each hook has three programs, tried in this order by userspace: a
//! BTF-enabled tracepoint (`*_btf`), a raw tracepoint (`*_raw`) and the
//! classic `net:` tracepoint.
mod emit;
mod fib;
mod kmem;
mod pair;
mod watch;

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use tracer_common::{
    NO_OFFSET, PAIR_WINDOW_NS, PKT_SNAP, dir,
    pair::{Ip, SNAP_WORDS},
};

use emit::{quiet, send_packet, send_rx, urgent};
use fib::{RX_LAST, send_lookups};
use kmem::{Direct, Kmem, Probe, off};
use pair::{find, keep};
use watch::watched;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Words of a transmitted packet read to find its identity (64 bytes): an
/// IPv4 header with options and the ICMP type after it, or an IPv6 header
/// and the first 8 bytes after it.
const HDR_WORDS: usize = 8;

/// skb->protocol (host order) when it is IPv4 or IPv6.
#[inline(always)]
fn ip_protocol<M: Kmem>(skb: *const u8) -> Option<u16> {
    let p = u16::from_be(M::get::<u16>(skb, off!(skb_protocol)));
    (p == ETH_P_IP || p == ETH_P_IPV6).then_some(p)
}

/// The first `8 * N` bytes from the IP header `l3` on.
#[inline(always)]
fn read_words<const N: usize>(l3: *const u8) -> Option<[u64; N]> {
    let mut h = core::mem::MaybeUninit::<[u64; N]>::uninit();
    let n = core::mem::size_of::<[u64; N]>() as u32;
    // SAFETY: the helper checks the source and fills `h` (zeroes on error).
    let rc = unsafe { bpf_probe_read_kernel(h.as_mut_ptr() as *mut _, n, l3 as *const _) };
    // SAFETY: written by the helper.
    (rc == 0).then(|| unsafe { h.assume_init() })
}

/// A packet received: kept for pairing (see `pair`).
#[inline(always)]
fn rx<M: Kmem>(skb: *const u8) -> Option<()> {
    let key = watched::<M>(skb)?;
    let protocol = ip_protocol::<M>(skb)?;
    if let Some(last) = RX_LAST.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; programs do not migrate while running.
        unsafe { *last = key };
    }
    // The link-layer header has been pulled: data is the IP header.
    let pkt = read_words::<SNAP_WORDS>(M::ptr(skb, off!(skb_data)))?;
    let ip = Ip::parse(&pkt)?;
    let seen = keep(&ip.key(&key), |seen| {
        seen.ts_ns = emit::now();
        seen.skb_len = M::get(skb, off!(skb_len));
        seen.mark = M::get(skb, off!(skb_mark));
        seen.protocol = protocol;
        seen.sent = 0;
        seen.cap_len = PKT_SNAP as u32;
        for i in 0..SNAP_WORDS {
            seen.data[i] = pkt[i];
        }
    })?;
    if ip.time_exceeded() {
        send_rx(seen, quiet());
    }
    Some(())
}

/// A packet queued for transmission: sent to userspace with its reception
/// when it may be a looped copy of one.
#[inline(always)]
fn tx<M: Kmem>(skb: *const u8) -> Option<()> {
    let key = watched::<M>(skb)?;
    let protocol = ip_protocol::<M>(skb)?;
    // data may be the link-layer header: start at the network header.
    let head = M::ptr(skb, off!(skb_head));
    let l3 = head.wrapping_add(M::get::<u16>(skb, off!(skb_network_header)) as usize);
    let h = read_words::<HDR_WORDS>(l3)?;
    let ip = Ip::parse(&h)?;
    // A reception of the same identity, with a higher TTL, recent.
    let mut now = 0;
    let paired = find(&ip.key(&key)).and_then(|seen| {
        let rx = Ip::parse(&seen.data)?;
        if ip.ttl() >= rx.ttl() {
            return None;
        }
        now = emit::now();
        let recent = seen.ts_ns.saturating_add(PAIR_WINDOW_NS) >= now;
        let addrs = rx.addrs();
        recent.then_some((seen, addrs))
    });
    let flags = match paired {
        Some((seen, (src, dst))) => {
            send_rx(seen, quiet());
            send_lookups(&key, &src, &dst, seen.ts_ns);
            urgent(now)
        }
        None if ip.time_exceeded() => {
            now = emit::now();
            quiet()
        }
        None => return None,
    };
    let meta = (
        M::get(skb, off!(skb_len)),
        M::get(skb, off!(skb_mark)),
        protocol,
    );
    send_packet(&key, dir::TX, now, meta, flags, |ev| {
        // SAFETY: the helper checks the source; the destination is the record.
        let rc = unsafe {
            bpf_probe_read_kernel(
                ev.data.as_mut_ptr() as *mut _,
                PKT_SNAP as u32,
                l3 as *const _,
            )
        };
        ev.cap_len = if rc == 0 { PKT_SNAP as u32 } else { 0 };
    });
    Some(())
}

// BTF-enabled tracepoints (preferred): the skb is a typed argument, and
// its members are read with plain loads.

#[btf_tracepoint(function = "netif_receive_skb")]
pub fn pkt_rx_btf(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = rx::<Direct>(skb as *const u8);
    0
}

#[btf_tracepoint(function = "net_dev_queue")]
pub fn pkt_tx_btf(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = tx::<Direct>(skb as *const u8);
    0
}

// Raw tracepoints: the skb is the first argument, read with helpers. The
// kernel does not build the classic tracepoint's record for every packet.

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn pkt_rx_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = rx::<Probe>(skb as *const u8);
    0
}

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn pkt_tx_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = tx::<Probe>(skb as *const u8);
    0
}

// Classic tracepoints: the last resort.

/// The skb argument of a classic net tracepoint (field offset `tp_off`).
#[inline(always)]
fn tp_skb(ctx: &TracePointContext, tp_off: u32) -> Option<*const u8> {
    if tp_off == NO_OFFSET {
        return None;
    }
    // SAFETY: offset from the tracepoint's format file.
    let skb: u64 = unsafe { ctx.read_at(tp_off as usize) }.ok()?;
    Some(skb as *const u8)
}

#[tracepoint(category = "net", name = "netif_receive_skb")]
pub fn pkt_rx(ctx: TracePointContext) -> u32 {
    let _ = tp_skb(&ctx, off!(tp_rx_skb)).and_then(rx::<Probe>);
    0
}

#[tracepoint(category = "net", name = "net_dev_queue")]
pub fn pkt_tx(ctx: TracePointContext) -> u32 {
    let _ = tp_skb(&ctx, off!(tp_tx_skb)).and_then(tx::<Probe>);
    0
}
