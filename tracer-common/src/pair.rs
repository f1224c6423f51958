//! The packet programs' view of a packet's first bytes, and the loose
//! identity under which a reception waits for its looped copy (see
//! tracer-ebpf's `packet/pair.rs`). Pure arithmetic, shared so that
//! userspace tests can hold it against the loop detector's matching.
//!
//! The identity is a superset of what the detector matches: every field
//! in it is one the detector requires to be equal. It leaves out the
//! source (masquerade rewrites it), and for IPv4 also the echo id and
//! ports (masquerade may rewrite those too): namespace, interface,
//! destination, protocol and IPv4 ID; for IPv6 (no ID), the payload
//! length and the echo sequence, destination port or ICMPv6 type.
//!
//! Bytes are handled as little-endian 64-bit words, as the eBPF programs
//! load them (the eBPF target is bpfel): whole-word loads and shifts,
//! where byte arrays make the eBPF compiler call out to byte-by-byte
//! memcpy/memcmp routines.
use crate::{PKT_SNAP, WatchKey};

/// [`PKT_SNAP`] in words.
pub const SNAP_WORDS: usize = PKT_SNAP / 8;

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// An address as two words, IPv4 in the low half of the first (the
/// layout of [`crate::FibLookupEvent`]'s `src` and `dst`).
pub type Addr = [u64; 2];

/// The loose identity of a packet on a watched interface, as four words:
/// (netns, ifindex), the destination (two words), and (IPv4 ID or IPv6
/// payload length, IPv6 l4, protocol, family).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairKey(pub [u64; 4]);

impl PairKey {
    /// Word-by-word equality (no memcmp in eBPF).
    #[inline(always)]
    pub fn same(&self, o: &PairKey) -> bool {
        self.0[0] == o.0[0] && self.0[1] == o.0[1] && self.0[2] == o.0[2] && self.0[3] == o.0[3]
    }

    /// The interface the identity belongs to.
    #[inline(always)]
    pub fn iface(&self) -> WatchKey {
        WatchKey {
            netns: self.0[0] as u32,
            ifindex: (self.0[0] >> 32) as u32,
        }
    }
}

/// The first `8 * W` bytes of a packet from its IP header on (`W` >= 8),
/// as words.
pub struct Ip<'a, const W: usize> {
    w: &'a [u64; W],
    v6: bool,
}

impl<'a, const W: usize> Ip<'a, W> {
    /// None unless the words start with an IPv4 or IPv6 header.
    #[inline(always)]
    pub fn parse(w: &'a [u64; W]) -> Option<Self> {
        match (w[0] & 0xff) >> 4 {
            4 => Some(Ip { w, v6: false }),
            6 => Some(Ip { w, v6: true }),
            _ => None,
        }
    }

    /// Byte `i`.
    #[inline(always)]
    fn byte(&self, i: usize) -> u8 {
        (self.w[i / 8] >> ((i % 8) * 8)) as u8
    }

    /// The big-endian u16 at byte `i` (`i` even and not the last of a word).
    #[inline(always)]
    fn be16(&self, i: usize) -> u16 {
        u16::from_be((self.w[i / 8] >> ((i % 8) * 8)) as u16)
    }

    /// TTL or hop limit.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        if self.v6 { self.byte(7) } else { self.byte(8) }
    }

    /// Protocol, or the IPv6 header's next header.
    #[inline(always)]
    fn proto(&self) -> u8 {
        if self.v6 { self.byte(6) } else { self.byte(9) }
    }

    /// Source and destination.
    #[inline(always)]
    pub fn addrs(&self) -> (Addr, Addr) {
        if self.v6 {
            ([self.w[1], self.w[2]], [self.w[3], self.w[4]])
        } else {
            ([self.w[1] >> 32, 0], [self.w[2] & 0xffff_ffff, 0])
        }
    }

    /// An ICMP time-exceeded message (ICMP type 11, ICMPv6 type 3).
    #[inline(always)]
    pub fn time_exceeded(&self) -> bool {
        if self.v6 {
            self.proto() == IPPROTO_ICMPV6 && self.byte(40) == 3
        } else {
            let ihl = usize::from(self.byte(0) & 0x0f) * 4;
            self.proto() == IPPROTO_ICMP && ihl >= 20 && ihl < 8 * W && self.byte(ihl) == 11
        }
    }

    /// The packet's identity on interface `w`.
    #[inline(always)]
    pub fn key(&self, w: &WatchKey) -> PairKey {
        let proto = self.proto();
        let (_, dst) = self.addrs();
        let (family, l4) = if self.v6 {
            let l4 = match proto {
                IPPROTO_ICMPV6 if self.byte(40) == 128 || self.byte(40) == 129 => self.be16(46),
                IPPROTO_ICMPV6 => u16::from(self.byte(40)),
                IPPROTO_TCP | IPPROTO_UDP => self.be16(42),
                _ => 0,
            };
            (AF_INET6, l4)
        } else {
            (AF_INET, 0)
        };
        PairKey([
            u64::from(w.netns) | u64::from(w.ifindex) << 32,
            dst[0],
            dst[1],
            u64::from(self.be16(4)) | u64::from(l4) << 16 | u64::from(proto) << 32 | family << 40,
        ])
    }
}
