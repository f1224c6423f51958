//! Sending packet-path records to userspace (packet records are built in
//! the ring buffer, only for what is sent), and when to wake it.
//!
//! Records are submitted without a wake-up (a wake-up costs microseconds;
//! userspace also drains the ring on a timer), except that a looped
//! packet wakes userspace at once, at most once per [`WAKE_GAP_NS`] per
//! CPU, and a backlog of [`WAKE_BACKLOG`] bytes forces one.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ktime_get_boot_ns,
    macros::map,
    maps::PerCpuArray,
};
use tracer_common::{
    EventHeader, PKT_SNAP, PacketEvent, WatchKey, dir, kind, pair::SNAP_WORDS, source,
};

use super::pair::RxSeen;
use crate::maps::{EVENTS, count_drop};

/// Backlog (bytes) after which a record wakes userspace.
const WAKE_BACKLOG: u64 = 1 << 20;
/// Least time between two wake-ups for looped packets on one CPU.
const WAKE_GAP_NS: u64 = 1_000_000;

/// Per CPU: when a looped packet last woke userspace.
#[map]
static LAST_WAKE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Flags for a record that need not wake userspace.
#[inline(always)]
pub fn quiet() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKE_BACKLOG {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Flags for the last record of a looped packet: wake userspace unless
/// this CPU did so within [`WAKE_GAP_NS`].
#[inline(always)]
pub fn urgent(now_ns: u64) -> u64 {
    if let Some(last) = LAST_WAKE.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; programs do not migrate while running.
        unsafe {
            if now_ns.wrapping_sub(*last) >= WAKE_GAP_NS {
                *last = now_ns;
                return BPF_RB_FORCE_WAKEUP as u64;
            }
        }
    }
    quiet()
}

/// Copies `rec` into the ring buffer without waking userspace.
#[inline(always)]
pub fn output<T>(rec: &T) {
    if EVENTS.output::<T>(rec, quiet()).is_err() {
        count_drop();
    }
}

/// Writes the header of a record that is not about a task: everything
/// but the task fields (pid .. parent_comm), which stay as they are. Map
/// slots start zeroed and never get task fields; a ring-buffer
/// reservation needs [`clear_task`] first.
#[inline(always)]
pub fn set_header(h: &mut EventHeader, kind: u16, len: usize, netns: u32, ts_ns: u64) {
    h.kind = kind;
    h.source = source::TRACEPOINT;
    h._pad0 = 0;
    h.len = len as u32;
    h.ts_ns = ts_ns;
    h.netns = netns;
}

/// Zeroes everything after `ts_ns` in a header (pid .. parent_comm, netns
/// included: 64 bytes at offset 16), word by word; call it before
/// [`set_header`]. Volatile stores: the compiler would merge plain ones
/// into a call to a byte-by-byte memset routine.
#[inline(always)]
pub fn clear_task(h: &mut EventHeader) {
    let words = (h as *mut EventHeader as *mut u64).wrapping_add(2);
    for i in 0..8 {
        // SAFETY: words 2..10 of the 80-byte header (checked below).
        unsafe { core::ptr::write_volatile(words.wrapping_add(i), 0) };
    }
}

const _: () = assert!(core::mem::offset_of!(EventHeader, pid) == 16);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 80);
const _: () = assert!(core::mem::align_of::<EventHeader>() == 8);

#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// Reserves a packet record in the ring buffer and writes all of it but
/// `cap_len` and `data`, which `data` fills.
#[inline(always)]
pub fn send_packet(
    key: &WatchKey,
    direction: u8,
    ts_ns: u64,
    (skb_len, mark, protocol): (u32, u32, u16),
    flags: u64,
    data: impl FnOnce(&mut PacketEvent),
) {
    let Some(mut entry) = EVENTS.reserve::<PacketEvent>(0) else {
        count_drop();
        return;
    };
    // SAFETY: the reservation is a PacketEvent; every field is written.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    let len = core::mem::size_of::<PacketEvent>();
    clear_task(&mut ev.hdr);
    set_header(&mut ev.hdr, kind::PACKET, len, key.netns, ts_ns);
    ev.ifindex = key.ifindex;
    ev.skb_len = skb_len;
    ev.mark = mark;
    ev.dir = direction;
    ev._pad0 = 0;
    ev.protocol = protocol;
    ev._pad1 = 0;
    data(ev);
    entry.submit(flags);
}

/// Sends a kept reception (once), with time `ts_ns`.
#[inline(always)]
pub fn send_rx(seen: &mut RxSeen, ts_ns: u64, flags: u64) {
    if seen.sent != 0 {
        return;
    }
    seen.sent = 1;
    let meta = (seen.skb_len, seen.mark, seen.protocol);
    send_packet(&seen.iface, dir::RX, ts_ns, meta, flags, |ev| {
        ev.cap_len = seen.cap_len;
        copy_words(&mut ev.data, &seen.data, seen.cap_len);
    });
}

/// Copies the words of `words` that hold any of its first `len` bytes
/// into a record's `data`, word by word (no memcpy), and zeroes the rest
/// (a slot's words past its packet are an older packet's).
#[inline(always)]
fn copy_words(data: &mut [u8; PKT_SNAP], words: &[u64; SNAP_WORDS], len: u32) {
    // SAFETY: `data` is PKT_SNAP bytes at an 8-byte aligned offset of an
    // 8-byte aligned struct (checked below).
    let d = unsafe { &mut *(data.as_mut_ptr() as *mut [u64; SNAP_WORDS]) };
    for i in 0..SNAP_WORDS {
        d[i] = if (i as u32) * 8 < len { words[i] } else { 0 };
    }
}

const _: () = assert!(core::mem::offset_of!(PacketEvent, data) % 8 == 0);
const _: () = assert!(core::mem::align_of::<PacketEvent>() == 8);
