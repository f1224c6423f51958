//! Pairing a transmitted packet with its reception, in the kernel.
//!
//! A looped copy is a packet transmitted out of the interface it was
//! received on. The kernel keeps the receiving interface in the skb
//! (`skb_iif`, `__sk_buff->ingress_ifindex` in tc programs; forwarding
//! does not change it), so a transmission that was not received on its own
//! interface is dismissed by one comparison (`mod.rs`), and only the rare
//! transmission that was looks for its reception here.
//!
//! Its reception is on the same CPU: a router forwards a packet inside the
//! receive call that delivered it, on the CPU that received it. So each
//! CPU keeps its last [`RX_RING`] receptions on watched interfaces in a
//! ring of its own ([`RX_RINGS`], a per-CPU array: no lock, no hash, no
//! cache line shared between CPUs, and the same few kilobytes written over
//! and over, which stay in the CPU's cache). A reception costs a copy of
//! its first bytes into the next slot; nothing is sent to userspace. A
//! transmission received on its own interface searches the ring, newest
//! first, for its identity ([`PairKey`]) with a higher TTL.
//!
//! The ring covers a receive batch (the kernel hands up to 8 packets
//! together to the IP layer after GRO, each seen by the reception program
//! before the first is routed). A looped copy transmitted later or on
//! another CPU (one held for neighbour resolution) finds no reception and
//! is not reported; a loop repeats, and its next packet is.
//!
//! The identity and the header parsing are in `tracer_common::pair`.
use aya_ebpf::{macros::map, maps::PerCpuArray};
use tracer_common::{
    WatchKey,
    pair::{Ip, PairKey, SNAP_WORDS},
};

/// Slots per CPU (a power of two).
pub const RX_RING: u32 = 16;

/// A reception kept for pairing: what its `PacketEvent` needs beyond the
/// identity (the record is built only when it is sent).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RxSeen {
    /// Its interface; ifindex 0 while the slot is written.
    pub iface: WatchKey,
    /// The ring's count of receptions when this one was kept.
    pub seq: u32,
    pub skb_len: u32,
    pub mark: u32,
    pub protocol: u16,
    /// 1 once sent to userspace (a reception is sent once).
    pub sent: u16,
    pub cap_len: u32,
    pub _pad: u32,
    /// The packet from its IP header on: `cap_len` bytes of it, then
    /// what an older packet left.
    pub data: [u64; SNAP_WORDS],
}

/// One CPU's receptions.
#[repr(C)]
pub struct RxRing {
    /// Receptions kept so far (wrapping); the next goes to slot
    /// `next % RX_RING`.
    pub next: u32,
    pub _pad: u32,
    /// The watched interface of the last reception: the FIB lookups that
    /// follow on this CPU are made for it (`fib`).
    pub last: WatchKey,
    pub slots: [RxSeen; RX_RING as usize],
}

#[map]
static RX_RINGS: PerCpuArray<RxRing> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's ring.
#[inline(always)]
pub fn ring() -> Option<&'static mut RxRing> {
    // SAFETY: a per-CPU value; programs do not migrate while running, and
    // nothing else on this CPU runs a packet program in between (softirq
    // and tracepoint programs do not nest into one another here; if one
    // did, a slot would hold a mixed record, which userspace rejects).
    RX_RINGS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// Keeps a reception on `iface`: `fill` writes the next slot (and says
/// whether it holds an IP packet).
#[inline(always)]
pub fn keep(
    iface: &WatchKey,
    fill: impl FnOnce(&mut RxSeen) -> bool,
) -> Option<&'static mut RxSeen> {
    let r = ring()?;
    r.last = *iface;
    let seq = r.next;
    r.next = seq.wrapping_add(1);
    let seen = &mut r.slots[(seq & (RX_RING - 1)) as usize];
    // The slot matches nothing until it is complete.
    seen.iface.ifindex = 0;
    seen.seq = seq;
    seen.sent = 0;
    if !fill(seen) {
        return None;
    }
    seen.iface = *iface;
    Some(seen)
}

/// The newest reception on this CPU whose packet has identity `key` and a
/// TTL above `ttl`. (The identities are worked out here, for the few
/// transmissions that look, rather than for every reception.)
#[inline(always)]
pub fn find(key: &PairKey, ttl: u8) -> Option<&'static mut RxSeen> {
    let r = ring()?;
    let newest = r.next.wrapping_sub(1);
    for i in 0..RX_RING {
        let at = (newest.wrapping_sub(i) & (RX_RING - 1)) as usize;
        let seen = &r.slots[at];
        if seen.iface.ifindex == 0 {
            continue;
        }
        // The words past its packet are an older packet's: zeroes here.
        let mut w = core::mem::MaybeUninit::<[u64; SNAP_WORDS]>::uninit();
        let p = w.as_mut_ptr() as *mut u64;
        for j in 0..SNAP_WORDS {
            let v = if (j as u32) * 8 < seen.cap_len {
                seen.data[j]
            } else {
                0
            };
            // SAFETY: word `j` of the array; volatile, so that no memcpy
            // routine is called.
            unsafe { core::ptr::write_volatile(p.add(j), v) };
        }
        // SAFETY: every word written above.
        let w = unsafe { w.assume_init() };
        let Some(ip) = Ip::parse(&w) else {
            continue;
        };
        if ip.ttl() > ttl && ip.key(&seen.iface).same(key) {
            return Some(&mut r.slots[at]);
        }
    }
    None
}
