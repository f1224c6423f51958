//! Pairing a transmitted packet with its reception, in the kernel.
//!
//! Every IP packet received on a watched interface is kept in [`RX_SEEN`]
//! under a loose identity, [`PairKey`]; nothing is sent to userspace. A
//! packet transmitted on a watched interface looks its identity up there.
//! Only when it finds a reception on the same interface, recent and with
//! a higher TTL, are the reception, the FIB lookups made for it and the
//! transmitted packet sent to userspace, where the loop detector decides.
//!
//! [`RX_SEEN`] is a direct-mapped table: an array indexed by a hash of the
//! identity, where a reception overwrites whatever its slot held. Finding
//! a slot is arithmetic and an array access the verifier inlines, with no
//! helper call and no lock, so healthy traffic costs a header read and a
//! record write per reception and a header read per transmission. (An LRU
//! hash cost far more per reception here.) Each slot's hash is also kept
//! in a small array of its own, [`RX_TAGS`], which a transmission checks
//! before it touches the slot: the records do not stay in the CPU's cache
//! under traffic, the tags do, and a cache miss per transmitted packet
//! was most of what a transmission cost. A reception is lost when
//! another one lands in its slot before its looped copy is transmitted.
//! A router transmits a packet it forwards within the same receive call,
//! so only the receptions of one receive batch (tens) come in between: a
//! few percent of looped packets may go unpaired at high packet rates,
//! and a loop repeats anyway.
//! Two CPUs writing one slot at the same moment can leave a mixed record;
//! the detector in userspace rejects what does not match.
//!
//! The identity and the header parsing are in `tracer_common::pair`.
use aya_ebpf::{macros::map, maps::Array};
use tracer_common::pair::{PairKey, SNAP_WORDS};

/// Slots of [`RX_SEEN`] (a power of two: the slot is the top bits of a
/// hash): 2048 slots, 368 KB of records and 16 KB of tags.
const RX_SLOTS_LOG2: u32 = 11;

/// (slot, tag): the slot of [`RX_SEEN`] for an identity, and the tag
/// [`RX_TAGS`] holds for it (multiplicative hashing; a tag is never 0, the
/// tag of an empty slot).
#[inline(always)]
fn slot(key: &PairKey) -> (u32, u64) {
    let mut h: u64 = 0;
    for w in key.0 {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    ((h >> (64 - RX_SLOTS_LOG2)) as u32, h | 1)
}

/// A reception kept for pairing: what its `PacketEvent` needs beyond the
/// identity (the record is built only when it is sent; 184 bytes here
/// instead of 272 is less memory written per packet).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RxSeen {
    pub key: PairKey,
    pub ts_ns: u64,
    pub skb_len: u32,
    pub mark: u32,
    pub protocol: u16,
    /// 1 once sent to userspace (a reception is sent once).
    pub sent: u16,
    pub cap_len: u32,
    /// The packet from its IP header on.
    pub data: [u64; SNAP_WORDS],
}

#[map]
static RX_SEEN: Array<RxSeen> = Array::with_max_entries(1 << RX_SLOTS_LOG2, 0);

/// The tag of each slot of [`RX_SEEN`].
#[map]
static RX_TAGS: Array<u64> = Array::with_max_entries(1 << RX_SLOTS_LOG2, 0);

/// Keeps a reception of identity `key`: `fill` writes its record into the
/// slot, which is then marked as holding `key`. (A transmission that
/// reads the slot meanwhile sees the old identity, or a tag without its
/// key, and does not pair.)
#[inline(always)]
pub fn keep(key: &PairKey, fill: impl FnOnce(&mut RxSeen)) -> Option<&'static mut RxSeen> {
    let (slot, tag) = slot(key);
    let t = RX_TAGS.get_ptr_mut(slot)?;
    // SAFETY: array values; see the module comment on concurrent writers.
    let seen = unsafe { &mut *RX_SEEN.get_ptr_mut(slot)? };
    // SAFETY: as above.
    unsafe { *t = tag };
    // No identity has netns 0 and ifindex 0: the slot matches nothing
    // while it is written.
    seen.key.0[0] = 0;
    fill(seen);
    seen.key = *key;
    Some(seen)
}

/// The reception kept under `key`, if its slot still holds it.
#[inline(always)]
pub fn find(key: &PairKey) -> Option<&'static mut RxSeen> {
    let (slot, tag) = slot(key);
    if *RX_TAGS.get(slot)? != tag {
        return None;
    }
    // SAFETY: an array value; see the module comment on concurrent writers.
    let seen = unsafe { &mut *RX_SEEN.get_ptr_mut(slot)? };
    seen.key.same(key).then_some(seen)
}
