//! Sending a record to userspace, written once: reserve (or output) in
//! `EVENTS`, fill the header for the current task with the record type's
//! own kind (tracer_common::Record), and count a drop when the ring is
//! full. The packet path has its own (its records come from softirq
//! context, where the current task says nothing).
use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, ring_buf::RingBufEntry},
};
use tracer_common::{Config, EventHeader, NlMsgEvent, Record};

use crate::{
    maps::{EVENTS, count_drop},
    task::fill_header,
};

/// A reservation of a `T` whose header is filled; `None` (a drop counted)
/// when the ring is full. The caller fills the rest and submits it.
#[inline(always)]
pub fn reserve<T: Record>(cfg: &Config, source: u8) -> Option<RingBufEntry<T>> {
    let Some(entry) = reserve_uncounted::<T>(cfg, source) else {
        count_drop();
        return None;
    };
    Some(entry)
}

/// [`reserve`] without counting a full ring: for records that are best
/// effort (an exec only names a process's executable).
#[inline(always)]
pub fn reserve_uncounted<T: Record>(cfg: &Config, source: u8) -> Option<RingBufEntry<T>> {
    let mut entry = EVENTS.reserve::<T>(0)?;
    // SAFETY: a Record starts with its EventHeader; the reservation is
    // writable.
    unsafe {
        fill_header(
            entry.as_mut_ptr() as *mut EventHeader,
            cfg,
            T::KIND,
            source,
            T::SIZE,
        )
    };
    Some(entry)
}

/// Sends a `T` built on the stack, with its header filled here; a full
/// ring counts a drop.
#[inline(always)]
pub fn send<T: Record>(ev: &mut T, cfg: &Config, source: u8) {
    // SAFETY: a Record starts with its EventHeader; `ev` is writable.
    unsafe {
        fill_header(
            ev as *mut T as *mut EventHeader,
            cfg,
            T::KIND,
            source,
            T::SIZE,
        )
    };
    if EVENTS.output::<T>(ev, 0).is_err() {
        count_drop();
    }
}

/// Where a netlink copy is built before it is sent: one per CPU (a
/// program does not migrate while it runs).
#[map]
static NL_SCRATCH: PerCpuArray<NlMsgEvent> = PerCpuArray::with_max_entries(1, 0);

/// Sends a netlink copy (`T` is `NlMsgEvent` or a record kind laid out as
/// one): `fill` writes its fields after the header and returns the data's
/// length (at most `NL_DATA_MAX - 1`, masked). Only the bytes the copy
/// holds go into the ring, not the whole 4 KiB buffer: a route request is
/// about 60 bytes, so the ring holds some twenty times more of them before
/// a burst overflows it. A full ring counts a drop.
#[inline(always)]
pub fn send_nl_copy<T: Record>(
    cfg: &Config,
    source: u8,
    fill: impl FnOnce(*mut NlMsgEvent) -> u32,
) -> Option<()> {
    let ev = NL_SCRATCH.get_ptr_mut(0)?;
    let n = fill(ev) & (tracer_common::NL_DATA_MAX as u32 - 1);
    let size = core::mem::offset_of!(NlMsgEvent, data) as u32 + n;
    // SAFETY: the scratch slot is this CPU's and writable; it starts with
    // its EventHeader.
    unsafe { fill_header(ev as *mut EventHeader, cfg, T::KIND, source, size) };
    // SAFETY: `size` is at most the slot's size (the data's length is
    // masked below NL_DATA_MAX).
    let bytes = unsafe { core::slice::from_raw_parts(ev as *const u8, size as usize) };
    if EVENTS.output::<[u8]>(bytes, 0).is_err() {
        count_drop();
    }
    Some(())
}
