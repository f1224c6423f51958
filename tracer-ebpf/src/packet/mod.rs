//! The packet path: packets received on or transmitted out of a watched
//! interface, and the FIB lookups made for packets that arrived on one
//! (fib:fib_table_lookup, fib6:fib6_table_lookup).
//!
//! Two ways to see the packets, both feeding the same [`rx`] and [`tx`]:
//! - `tc`: programs attached (tcx) to the ingress and egress of each
//!   watched interface, and only there: other interfaces cost nothing.
//! - `tp`: programs on the netif_receive_skb and net_dev_queue tracepoints,
//!   which see every packet on the machine and first ask `watch` whether
//!   its interface is watched: a BTF-enabled tracepoint (`*_btf`), a raw
//!   tracepoint (`*_raw`) or the classic `net:` tracepoint. Userspace uses
//!   them for an interface it cannot attach tc programs to.
//!
//! The rest:
//! - `pair`: a reception on a watched interface is kept in a small
//!   direct-mapped table; a transmission on one is looked up there, and
//!   only a transmission that may be a looped copy of a reception is sent
//!   to userspace, with the reception and its FIB lookups (`fib`). ICMP
//!   time-exceeded messages are sent as they are seen.
//! - `kmem`: the offsets, and reading the skb in tracepoint programs with
//!   plain loads (BTF tracepoints) or bpf_probe_read_kernel.
//! - `emit`: ring-buffer records and wake-ups.
mod emit;
mod fib;
mod kmem;
mod pair;
mod tc;
mod tp;
mod watch;

use tracer_common::{
    PAIR_WINDOW_NS, WatchKey, dir,
    pair::{Ip, SNAP_WORDS},
};

use emit::{quiet, send_packet, send_rx, urgent};
use fib::{RX_LAST, send_lookups};
use pair::{find, keep};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Words of a transmitted packet read to find its identity (64 bytes): an
/// IPv4 header with options and the ICMP type after it, or an IPv6 header
/// and the first 8 bytes after it.
const HDR_WORDS: usize = 8;

/// A packet as a program sees it.
pub trait Source {
    /// The watched interface the packet is on, or None.
    fn watched(&self) -> Option<WatchKey>;
    /// skb->protocol, host order.
    fn protocol(&self) -> u16;
    fn skb_len(&self) -> u32;
    fn mark(&self) -> u32;
    /// Writes all of `dst`: up to `8 * N` bytes from the IP header on,
    /// zero after the packet where the source can tell where it ends.
    /// Returns how many bytes are the packet's.
    fn read<const N: usize>(&self, dst: *mut [u64; N]) -> Option<u32>;
}

/// The first `8 * N` bytes of the packet, on the stack.
#[inline(always)]
fn read_stack<S: Source, const N: usize>(s: &S) -> Option<([u64; N], u32)> {
    let mut w = core::mem::MaybeUninit::<[u64; N]>::uninit();
    let n = s.read::<N>(w.as_mut_ptr())?;
    // SAFETY: `read` wrote all of it.
    Some((unsafe { w.assume_init() }, n))
}

/// The packet's watched interface and its protocol (host order), if it is
/// an IPv4 or IPv6 packet on a watched interface.
#[inline(always)]
fn watched_ip<S: Source>(s: &S) -> Option<(WatchKey, u16)> {
    let key = s.watched()?;
    let protocol = s.protocol();
    (protocol == ETH_P_IP || protocol == ETH_P_IPV6).then_some((key, protocol))
}

/// A packet received: kept for pairing (see `pair`).
#[inline(always)]
fn rx<S: Source>(s: &S) -> Option<()> {
    let (key, protocol) = watched_ip(s)?;
    if let Some(last) = RX_LAST.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; programs do not migrate while running.
        unsafe { *last = key };
    }
    let (pkt, n) = read_stack::<S, SNAP_WORDS>(s)?;
    let ip = Ip::parse(&pkt)?;
    let seen = keep(&ip.key(&key), |seen| {
        seen.ts_ns = emit::now();
        seen.skb_len = s.skb_len();
        seen.mark = s.mark();
        seen.protocol = protocol;
        seen.sent = 0;
        seen.cap_len = n;
        for i in 0..SNAP_WORDS {
            seen.data[i] = pkt[i];
        }
    })?;
    if ip.time_exceeded() {
        send_rx(seen, quiet());
    }
    Some(())
}

/// A packet transmitted: sent to userspace with its reception when it may
/// be a looped copy of one.
#[inline(always)]
fn tx<S: Source>(s: &S) -> Option<()> {
    let (key, protocol) = watched_ip(s)?;
    let (h, _) = read_stack::<S, HDR_WORDS>(s)?;
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
    let meta = (s.skb_len(), s.mark(), protocol);
    send_packet(&key, dir::TX, now, meta, flags, |ev| {
        let words = ev.data.as_mut_ptr() as *mut [u64; SNAP_WORDS];
        ev.cap_len = s.read::<SNAP_WORDS>(words).unwrap_or(0);
    });
    Some(())
}

/// Zeroes `N` words one by one: the compiler turns zeroing an array into a
/// call to a byte-by-byte memset routine.
#[inline(always)]
fn zero<const N: usize>(dst: *mut [u64; N]) {
    let p = dst as *mut u64;
    for i in 0..N {
        // SAFETY: word `i` of the array.
        unsafe { core::ptr::write_volatile(p.wrapping_add(i), 0) };
    }
}
