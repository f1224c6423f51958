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
//! - `pair`: each CPU keeps its last receptions on watched interfaces in a
//!   small ring. A transmission on a watched interface that was received
//!   on that same interface (the skb says so) is looked up there, and only
//!   such a transmission that may be a looped copy of a reception is sent
//!   to userspace, with the reception and its FIB lookups (`fib`). Every
//!   other transmission is dismissed by that one comparison, unless it may
//!   be an ICMP time-exceeded message, which is sent as it is seen (as are
//!   received ones).
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
    WatchKey, dir,
    pair::{Ip, SNAP_WORDS},
};

use emit::{quiet, send_packet, send_rx, urgent};
use fib::send_lookups;
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
    /// The ifindex of the interface the packet was received on (skb_iif),
    /// 0 for a packet made on this host; `key`'s own ifindex when the
    /// kernel's offset is not known (so that nothing is dismissed).
    fn ingress_ifindex(&self, key: &WatchKey) -> u32;
    /// Whether the packet may be ICMP or ICMPv6 (`v6`): false only when
    /// that is known cheaply. Sources that cannot tell say true.
    fn maybe_icmp(&self, _v6: bool) -> bool {
        true
    }
    /// Writes up to `8 * N` bytes from the IP header on into `dst`, and
    /// zero after the packet where the source can tell where it ends
    /// (words it does not write are left as they were). Returns how many
    /// bytes are the packet's.
    fn read<const N: usize>(&self, dst: *mut [u64; N]) -> Option<u32>;
    /// As `read`, for a reception kept for pairing: a source may trade
    /// the last bytes of a short packet (1 to 7 of them) for speed, and
    /// leaves the words after what it wrote as they were.
    fn snapshot<const N: usize>(&self, dst: *mut [u64; N]) -> Option<u32> {
        self.read::<N>(dst)
    }
}

/// The first `8 * N` bytes of the packet, on the stack.
#[inline(always)]
fn read_stack<S: Source, const N: usize>(s: &S) -> Option<([u64; N], u32)> {
    let mut w = core::mem::MaybeUninit::<[u64; N]>::uninit();
    zero::<N>(w.as_mut_ptr());
    let n = s.read::<N>(w.as_mut_ptr())?;
    // SAFETY: zeroed above.
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

/// A packet received: kept in this CPU's ring for pairing (see `pair`);
/// an ICMP time-exceeded message is also sent at once.
#[inline(always)]
fn rx<S: Source>(s: &S) -> Option<()> {
    let (key, protocol) = watched_ip(s)?;
    let mut te = false;
    let seen = keep(&key, |seen| {
        seen.skb_len = s.skb_len();
        seen.mark = s.mark();
        seen.protocol = protocol;
        let Some(n) = s.snapshot::<SNAP_WORDS>(&mut seen.data) else {
            return false;
        };
        seen.cap_len = n;
        let Some(ip) = Ip::parse(&seen.data) else {
            return false;
        };
        te = ip.time_exceeded();
        true
    })?;
    if te {
        send_rx(seen, emit::now(), quiet());
    }
    Some(())
}

/// A packet transmitted: sent to userspace with its reception when it may
/// be a looped copy of one, or when it is an ICMP time-exceeded message.
#[inline(always)]
fn tx<S: Source>(s: &S) -> Option<()> {
    let (key, protocol) = watched_ip(s)?;
    // Not received on this interface: not a looped copy (see `pair`).
    let here = s.ingress_ifindex(&key) == key.ifindex;
    if !here && !s.maybe_icmp(protocol == ETH_P_IPV6) {
        return None;
    }
    let (h, _) = read_stack::<S, HDR_WORDS>(s)?;
    let ip = Ip::parse(&h)?;
    let paired = if here {
        find(&ip.key(&key), ip.ttl())
    } else {
        None
    };
    let now;
    let flags = match paired {
        Some(seen) => {
            now = emit::now();
            // Its time: just before its copy's (the same receive call).
            if let Some(rx) = Ip::parse(&seen.data) {
                let (src, dst) = rx.addrs();
                send_rx(seen, now - 1, quiet());
                send_lookups(&key, &src, &dst, seen.seq);
            }
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
        zero::<SNAP_WORDS>(words);
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
