//! Sending a record to userspace, written once: reserve (or output) in
//! `EVENTS`, fill the header for the current task with the record type's
//! own kind (tracer_common::Record), and count a drop when the ring is
//! full. The packet path has its own (its records come from softirq
//! context, where the current task says nothing).
use aya_ebpf::maps::ring_buf::RingBufEntry;
use tracer_common::{Config, EventHeader, Record};

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
