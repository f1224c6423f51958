//! The allocator's part in the tracer's memory staying flat for weeks.
//!
//! A backlog (the journal's, held while its disk is full) is the one large,
//! short-lived buffer the tracer keeps. With glibc, freeing it does not by
//! itself return its pages: while it grew, its reallocations extended the
//! heap's top in place, small allocations then landed past it, and the heap
//! can only shrink from the top. The soak measured this as the recorder's
//! RSS stepping up by a megabyte or more after a disk fill, with the live
//! heap (heaptrack) flat, and by as much after any backlog worked off in a
//! burst (the tracer kept off the CPU for a second: 5 MiB more, held; see
//! RELIABILITY.md, finding 15). musl's allocator
//! maps large allocations on their own and unmaps them when freed.

/// Allocations at least this large are mapped and unmapped on their own
/// (glibc), and grow by mremap. glibc's default threshold rises to the size
/// of the last such block freed (the parsed BTF at start-up; a backlog),
/// up to 32 MiB, after which the next backlog grows in the heap, and the
/// route mirror's array grows by copying (old and new copies at once:
/// about 12 MB more at its peak for a million routes) rather than by
/// mremap.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;

/// Tune the allocator: call first in `main`, before any other thread runs.
pub fn tune() {
    // SAFETY: mallopt only sets a parameter of the allocator; no other
    // thread allocates yet.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Return the heap's free pages to the system, wherever they lie in it:
/// after a large transient buffer is freed (a journal's recovery), and
/// every few seconds (the session), since a backlog worked off in a burst
/// leaves freed memory all through the heap. It walks every arena's free
/// chunks, so it stays off the per-event path.
pub fn give_back() {
    // SAFETY: malloc_trim takes the allocator's own locks and only advises
    // the kernel about pages that are free.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    /// Resident pages of this process, from /proc/self/statm.
    fn resident_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4
    }

    /// Freed memory with small allocations made after it (as events are
    /// while a backlog grows): the heap cannot shrink past them, and
    /// `give_back` returns the pages anyway. Pieces under the mmap
    /// threshold, so that they are in the heap whatever it is.
    #[cfg(target_env = "gnu")]
    #[test]
    fn freed_memory_goes_back_past_later_small_allocations() {
        let mut pins = Vec::new();
        let mut backlog = Vec::new();
        for _ in 0..400 {
            backlog.push(vec![1u8; 60 << 10]);
            pins.push(Box::new([0u8; 64]));
        }
        let full = resident_kib();
        drop(backlog);
        let started = std::time::Instant::now();
        super::give_back();
        eprintln!("give_back took {:?}", started.elapsed());
        let after = resident_kib();
        // Other tests run in this process at the same time; 24 MiB is far
        // above what they allocate.
        assert!(
            full.saturating_sub(after) >= 16 << 10,
            "resident {full} KiB with the backlog, {after} KiB after give_back"
        );
        drop(pins);
    }
}
