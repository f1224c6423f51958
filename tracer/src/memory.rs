//! The allocator's part in the tracer's memory staying flat for weeks.
//!
//! A backlog (the journal's, held while its disk is full) is the one large,
//! short-lived buffer the tracer keeps. With glibc, freeing it does not by
//! itself return its pages: while it grew, its reallocations extended the
//! heap's top in place, small allocations then landed past it, and the heap
//! can only shrink from the top. The soak measured this as the recorder's
//! RSS stepping up by a megabyte or more after a disk fill, with the live
//! heap (heaptrack) flat, and by as much after any backlog worked off in a
//! burst (the tracer kept off the CPU for a second: its heap 4 MiB larger,
//! held; see RELIABILITY.md, finding 15). musl's allocator maps large
//! allocations on their own and unmaps them when freed.

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
    const PAGE: usize = 4096;

    /// How many of the whole pages inside `[start, start + len)` are
    /// resident (mincore), and how many there are.
    fn resident_pages(start: usize, len: usize) -> (usize, usize) {
        let first = start.div_ceil(PAGE) * PAGE;
        let end = (start + len) / PAGE * PAGE;
        if end <= first {
            return (0, 0);
        }
        let pages = (end - first) / PAGE;
        let mut vec = vec![0u8; pages];
        // SAFETY: the range lies in the heap, which the allocations after
        // it (the test's pins) keep mapped; mincore only reports on it.
        let rc =
            unsafe { libc::mincore(first as *mut libc::c_void, end - first, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        (vec.iter().filter(|v| **v & 1 == 1).count(), pages)
    }

    /// Freed memory with small allocations made after it (as events are
    /// while a backlog grows): the heap cannot shrink past them, so the
    /// freed pages stay resident, and `give_back` returns them anyway.
    /// Pieces under the mmap threshold, so that they are in the heap.
    /// Measured page by page (mincore), not by the process's RSS.
    ///
    /// Run in a process of its own (this test binary again, with only
    /// [`freed_memory_scenario`]): beside the other tests, their threads
    /// share this one's arena, its small allocations come from the chunks
    /// they freed rather than after the backlog, and the freed backlog may
    /// join the arena's top instead, which a thread's arena keeps (in 2 of
    /// 6 runs of the whole suite, none of its pages went back).
    #[cfg(target_env = "gnu")]
    #[test]
    fn freed_memory_goes_back_past_later_small_allocations() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "memory::tests::freed_memory_scenario",
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .output()
            .expect("run the test binary again");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "the scenario, alone in its process:\n{text}"
        );
    }

    #[cfg(target_env = "gnu")]
    #[test]
    #[ignore = "run alone, in a process of its own, by freed_memory_goes_back_past_later_small_allocations"]
    fn freed_memory_scenario() {
        let mut pins = Vec::new();
        let mut backlog = Vec::new();
        for _ in 0..400 {
            backlog.push(vec![1u8; 60 << 10]);
            pins.push(Box::new([0u8; 64]));
        }
        let ranges: Vec<(usize, usize)> = backlog
            .iter()
            .map(|b| (b.as_ptr() as usize, b.len()))
            .collect();
        let count = |ranges: &[(usize, usize)]| {
            ranges
                .iter()
                .map(|(s, l)| resident_pages(*s, *l))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        let (before, pages) = count(&ranges);
        assert_eq!(before, pages, "the backlog is resident while held");
        drop(backlog);
        super::give_back();
        let (after, _) = count(&ranges);
        assert!(
            after < pages / 4,
            "{after} of the {pages} pages freed still resident after give_back"
        );
        drop(pins);
    }
}
