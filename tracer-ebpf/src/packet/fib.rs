//! FIB lookups made for packets received on a watched interface
//! (fib:fib_table_lookup, fib6:fib6_table_lookup).
//!
//! A lookup is not sent to userspace when it happens: it is kept in a
//! small per-CPU ring. Routing runs on the CPU that received the packet,
//! inside the same receive call, before the packet is transmitted; so when
//! a transmitted packet turns out to be a looped copy (see `pair`), the
//! lookups that sent it back are in that CPU's ring, and they are sent
//! along with the pair. Lookups for healthy traffic are overwritten.
use aya_ebpf::{
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use tracer_common::{
    FibLookupEvent, NO_OFFSET, WatchKey,
    af::{INET as AF_INET, INET6 as AF_INET6},
    kind,
    pair::Addr,
};

use super::{
    emit::{now, output, set_header},
    kmem::off,
    pair::ring,
};

/// Lookups kept per CPU. A policy-routed packet makes one lookup per table
/// tried, and a receive batch routes several packets in a row.
const FIB_RING: u32 = 16;

/// A lookup in the ring.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FibSeen {
    pub ev: FibLookupEvent,
    /// 1 once sent to userspace (a lookup is sent once).
    pub sent: u32,
    /// The count of this CPU's receptions (`pair`) when the lookup was
    /// made: it was made for that reception or a later one.
    pub rx_seq: u32,
}

#[map]
static FIB_SEEN: PerCpuArray<FibSeen> = PerCpuArray::with_max_entries(FIB_RING, 0);

/// Per CPU: the next slot of [`FIB_SEEN`] to write.
#[map]
static FIB_NEXT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

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
    // The watched interface of the last packet received on this CPU: the
    // FIB lookups for a received packet run on the same CPU, inside the
    // same receive call, so they are attributed to its namespace.
    let r = ring()?;
    let last = r.last;
    let rx_seq = r.next.wrapping_sub(1);
    if iif <= 0 || last.ifindex != iif as u32 {
        return None;
    }
    let next = FIB_NEXT.get_ptr_mut(0)?;
    // SAFETY: per-CPU slots; programs do not migrate while running.
    let slot = unsafe {
        let n = *next;
        *next = n.wrapping_add(1);
        FIB_SEEN.get_ptr_mut(n % FIB_RING)?
    };
    // SAFETY: as above.
    let s = unsafe { &mut *slot };
    s.sent = 0;
    s.rx_seq = rx_seq;
    let ev = &mut s.ev;
    // The slot's task fields are zero, and stay so.
    set_header(
        &mut ev.hdr,
        kind::FIB_LOOKUP,
        core::mem::size_of::<FibLookupEvent>(),
        last.netns,
        now(),
    );
    ev.table = read_tp(ctx, f.table);
    ev.err = read_tp(ctx, f.err);
    ev.oif = read_tp(ctx, f.oif);
    ev.iif = iif;
    ev.family = family;
    ev.proto = read_tp(ctx, f.proto);
    ev.sport = read_tp(ctx, f.sport);
    ev.dport = read_tp(ctx, f.dport);
    ev._pad0 = 0;
    *words16(&mut ev.dev) = read_tp(ctx, f.dev);
    // IPv4 addresses are 4 bytes in network order: the low half of the
    // first word (little-endian).
    let (src, dst): (Addr, Addr) = if family == AF_INET {
        (
            [u64::from(read_tp::<u32>(ctx, f.src)), 0],
            [u64::from(read_tp::<u32>(ctx, f.dst)), 0],
        )
    } else {
        (read_tp(ctx, f.src), read_tp(ctx, f.dst))
    };
    *words16(&mut ev.src) = src;
    *words16(&mut ev.dst) = dst;
    Some(())
}

/// A 16-byte field of [`FibLookupEvent`] as two words (see `pair` on why
/// not bytes).
#[inline(always)]
fn words16(b: &mut [u8; 16]) -> &mut Addr {
    // SAFETY: src, dst and dev are at 8-byte aligned offsets of an 8-byte
    // aligned struct (checked below).
    unsafe { &mut *(b.as_mut_ptr() as *mut Addr) }
}

const _: () = assert!(core::mem::offset_of!(FibLookupEvent, src) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(FibLookupEvent, dst) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(FibLookupEvent, dev) % 8 == 0);
const _: () = assert!(core::mem::align_of::<FibLookupEvent>() == 8);

/// Sends the lookups of this CPU's ring made for a packet received on
/// `key`'s interface from `src` to `dst` since reception `since_seq` of
/// this CPU's (once each).
#[inline(always)]
pub fn send_lookups(key: &WatchKey, src: &Addr, dst: &Addr, since_seq: u32) {
    for i in 0..FIB_RING {
        let Some(slot) = FIB_SEEN.get_ptr_mut(i) else {
            return;
        };
        // SAFETY: a per-CPU slot; programs do not migrate while running.
        let s = unsafe { &mut *slot };
        if s.sent == 0
            && s.ev.hdr.netns == key.netns
            && s.ev.iif == key.ifindex as i32
            && (s.rx_seq.wrapping_sub(since_seq) as i32) >= 0
            && same(words16(&mut s.ev.src), src)
            && same(words16(&mut s.ev.dst), dst)
        {
            s.sent = 1;
            output(&s.ev);
        }
    }
}

#[inline(always)]
fn same(a: &Addr, b: &Addr) -> bool {
    a[0] == b[0] && a[1] == b[1]
}

#[tracepoint(category = "fib", name = "fib_table_lookup")]
pub fn fib4_lookup(ctx: TracePointContext) -> u32 {
    let f = FibFields {
        table: off!(tp4_table),
        err: off!(tp4_err),
        oif: off!(tp4_oif),
        iif: off!(tp4_iif),
        proto: off!(tp4_proto),
        src: off!(tp4_src),
        dst: off!(tp4_dst),
        sport: off!(tp4_sport),
        dport: off!(tp4_dport),
        dev: off!(tp4_dev),
    };
    let _ = lookup(&ctx, AF_INET, &f);
    0
}

#[tracepoint(category = "fib6", name = "fib6_table_lookup")]
pub fn fib6_lookup(ctx: TracePointContext) -> u32 {
    let f = FibFields {
        table: off!(tp6_table),
        err: off!(tp6_err),
        oif: off!(tp6_oif),
        iif: off!(tp6_iif),
        proto: off!(tp6_proto),
        src: off!(tp6_src),
        dst: off!(tp6_dst),
        sport: off!(tp6_sport),
        dport: off!(tp6_dport),
        dev: off!(tp6_dev),
    };
    let _ = lookup(&ctx, AF_INET6, &f);
    0
}
