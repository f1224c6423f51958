//! The real [`RingReader`] over a memfd laid out as the kernel shows a
//! BPF_MAP_TYPE_RINGBUF map to mmap (kernel/bpf/ringbuf.c): consumer page
//! (the only one user space may map writable), producer page, the data area
//! twice. A file cannot alias its pages as the kernel's double mapping does,
//! so [`KernelRing`] writes data to both copies. Records are as the kernel's
//! reserve/submit/discard write them: an 8-byte header (`len` with the busy
//! and discard bits, `pg_off`), the payload, 8-byte aligned.
use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use super::{BUSY_BIT, DISCARD_BIT, HDR_SZ, RingReader, WINDOW};

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).expect("page size")
}

/// Bytes a record of `len` payload bytes takes in the ring.
fn total(len: usize) -> usize {
    (HDR_SZ + len).next_multiple_of(8)
}

/// A reserved record: its (unmasked) position and payload length.
#[derive(Clone, Copy, Debug)]
struct Rec {
    pos: usize,
    len: usize,
}

impl Rec {
    fn end(&self) -> usize {
        self.pos + total(self.len)
    }
}

/// The kernel's side of a ring buffer map, over a memfd.
struct KernelRing {
    name: String,
    page: usize,
    size: usize,
    /// The whole file (`len` bytes), mapped read-write (the kernel's view).
    base: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: positions and headers are atomic; payloads are written between the
// consumer's release of the space and the header's release, as the kernel's.
unsafe impl Send for KernelRing {}
unsafe impl Sync for KernelRing {}

impl Drop for KernelRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl KernelRing {
    /// A ring whose data area is `size` bytes; `name` names the memfd (one
    /// per test, so that /proc/self/maps tells the tests' mappings apart).
    fn new(name: &str, size: usize) -> Self {
        let page = page();
        assert!(size.is_power_of_two() && size.is_multiple_of(page));
        let name = CString::new(name).unwrap();
        // SAFETY: a fresh memfd, owned below.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = 2 * page + 2 * size;
        // SAFETY: plain calls on our own fd.
        let p = unsafe {
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), len as libc::off_t), 0);
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        KernelRing {
            name: name.into_string().unwrap(),
            page,
            size,
            base: NonNull::new(p.cast()).unwrap(),
            len,
            fd,
        }
    }

    /// The real reader, over its own descriptor of the memfd.
    fn reader(&self) -> RingReader {
        let fd = self.fd.try_clone().unwrap();
        let raw = fd.as_raw_fd();
        RingReader::over_fd(Box::new(fd), raw, self.size).unwrap()
    }

    fn at(&self, off: usize) -> *mut u8 {
        assert!(off < self.len);
        // SAFETY: within the mapping.
        unsafe { self.base.as_ptr().add(off) }
    }

    fn pos_word(&self, page: usize) -> &AtomicUsize {
        // SAFETY: page-aligned, within the mapping, only accessed atomically.
        unsafe { AtomicUsize::from_ptr(self.at(page * self.page).cast()) }
    }

    /// What the kernel reads as the consumer position.
    fn consumer_pos(&self) -> usize {
        self.pos_word(0).load(Ordering::Acquire)
    }

    fn producer_pos(&self) -> usize {
        self.pos_word(1).load(Ordering::Acquire)
    }

    /// Word `word` (0: len, 1: pg_off) of the header at `off` in copy `copy`.
    fn header(&self, off: usize, copy: usize, word: usize) -> &AtomicU32 {
        let at = 2 * self.page + copy * self.size + off + 4 * word;
        // SAFETY: 4-byte aligned (records are 8-byte aligned), in the mapping.
        unsafe { AtomicU32::from_ptr(self.at(at).cast()) }
    }

    /// Writes `bytes` at data position `pos`, in both copies, wrapping.
    fn poke(&self, pos: usize, bytes: &[u8]) {
        let mut at = pos & (self.size - 1);
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = rest.len().min(self.size - at);
            for copy in [0, self.size] {
                let dst = self.at(2 * self.page + copy + at);
                // SAFETY: `n` bytes fit before the copy's end.
                unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), dst, n) };
            }
            rest = &rest[n..];
            at = 0;
        }
    }

    /// `bpf_ringbuf_reserve`: `None` when the ring has no room.
    fn reserve(&self, len: usize) -> Option<Rec> {
        let cons = self.consumer_pos();
        let prod = self.pos_word(1).load(Ordering::Relaxed);
        if prod + total(len) - cons > self.size - 1 {
            return None;
        }
        let off = prod & (self.size - 1);
        // Pages from the kernel's struct (a page before the consumer page).
        let pg_off = (3 + off / self.page) as u32;
        for copy in [0, 1] {
            self.header(off, copy, 0)
                .store(len as u32 | BUSY_BIT, Ordering::Relaxed);
            self.header(off, copy, 1).store(pg_off, Ordering::Relaxed);
        }
        self.pos_word(1).store(prod + total(len), Ordering::Release);
        Some(Rec { pos: prod, len })
    }

    fn fill(&self, rec: Rec, payload: &[u8]) {
        assert_eq!(payload.len(), rec.len);
        self.poke(rec.pos + HDR_SZ, payload);
    }

    /// `bpf_ringbuf_submit` (or `_discard`): clears the busy bit with a
    /// fully ordered exchange.
    fn commit(&self, rec: Rec, discard: bool) {
        let off = rec.pos & (self.size - 1);
        let word = rec.len as u32 | if discard { DISCARD_BIT } else { 0 };
        self.header(off, 1, 0).store(word, Ordering::SeqCst);
        let old = self.header(off, 0, 0).swap(word, Ordering::SeqCst);
        assert_eq!(old, rec.len as u32 | BUSY_BIT);
    }

    /// `bpf_ringbuf_output`.
    fn output(&self, payload: &[u8]) -> Option<Rec> {
        let rec = self.reserve(payload.len())?;
        self.fill(rec, payload);
        self.commit(rec, false);
        Some(rec)
    }

    /// Outputs and reads filler records until the next record starts at
    /// data offset `off` (a multiple of 8).
    fn advance_to(&self, r: &mut RingReader, off: usize) {
        while self.producer_pos() & (self.size - 1) != off {
            let gap = off.wrapping_sub(self.producer_pos()) & (self.size - 1);
            let p = pattern(gap as u64, (gap - HDR_SZ).min(2000));
            self.output(&p).unwrap();
            assert_eq!(read(r, usize::MAX), (1, vec![p]));
        }
    }
}

/// A payload of `len` bytes that differs from record to record.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    let h = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|i| (h >> (i % 8 * 8)) as u8 ^ (i / 8) as u8)
        .collect()
}

/// Runs `r.read(max)`; returns its count and the payloads handed over.
fn read(r: &mut RingReader, max: usize) -> (usize, Vec<Vec<u8>>) {
    let mut got = Vec::new();
    let n = r.read(max, |d| got.push(d.to_vec())).unwrap();
    (n, got)
}

/// The reader's data window: (offset into the doubled data area, length).
fn window(r: &RingReader) -> Option<(usize, usize)> {
    r.window.as_ref().map(|w| (w.start, w.map.len))
}

/// The reader's mappings of `k`'s memfd, from /proc/self/maps, as (file
/// offset, length, writable); `k`'s own mapping is left out.
fn reader_mappings(k: &KernelRing) -> Vec<(usize, usize, bool)> {
    let path = format!(" /memfd:{} (deleted)", k.name);
    let own = k.base.as_ptr() as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut out = Vec::new();
    for line in maps.lines().filter(|l| l.ends_with(&path)) {
        // "start-end perms offset ...".
        let f: Vec<_> = line.split(' ').collect();
        let (a, b) = f[0].split_once('-').unwrap();
        let hex = |t: &str| usize::from_str_radix(t, 16).unwrap();
        if hex(a) != own {
            out.push((hex(f[2]), hex(b) - hex(a), f[1].as_bytes()[1] == b'w'));
        }
    }
    out
}

/// The reader maps the consumer page writable (the kernel refuses any other
/// writable mapping), and the producer page and a `wlen`-byte window at
/// `start` read-only, nothing more.
fn assert_mapped(k: &KernelRing, start: usize, wlen: usize) {
    let maps = reader_mappings(k);
    let writable: Vec<_> = maps.iter().filter(|m| m.2).collect();
    assert_eq!(writable, [&(0, k.page, true)], "{maps:?}");
    let read_only: usize = maps.iter().filter(|m| !m.2).map(|m| m.1).sum();
    assert_eq!(read_only, k.page + wlen, "{maps:?}");
    let from = 2 * k.page + start;
    let covers = |m: &&(usize, usize, bool)| m.0 <= from && from + wlen <= m.0 + m.1;
    assert!(maps.iter().filter(|m| !m.2).any(|m| covers(&m)), "{maps:?}");
}

#[test]
fn records_arrive_in_order_with_exact_payloads() {
    let k = KernelRing::new("tracer-ring-order", 16 * page());
    let mut r = k.reader();
    assert_eq!(read(&mut r, usize::MAX), (0, vec![]));
    let lens = [0, 1, 7, 8, 9, 13, 100, 4000, 63, 64];
    let sent: Vec<_> = (0..).zip(lens).map(|(s, l)| pattern(s, l)).collect();
    for p in &sent {
        k.output(p).unwrap();
    }
    let bytes: usize = lens.iter().map(|&l| total(l)).sum();
    assert_eq!(k.producer_pos(), bytes);
    assert_eq!(r.pending_bytes(), bytes);
    assert_eq!(read(&mut r, usize::MAX), (lens.len(), sent));
    assert_eq!(k.consumer_pos(), bytes);
    assert_eq!(r.pending_bytes(), 0);
    assert_eq!(read(&mut r, usize::MAX), (0, vec![]));
}

#[test]
fn a_batch_limit_is_honoured() {
    let k = KernelRing::new("tracer-ring-batch", 16 * page());
    let mut r = k.reader();
    let sent: Vec<_> = (0..10).map(|s| pattern(s, 10 + s as usize * 5)).collect();
    let recs: Vec<_> = sent.iter().map(|p| k.output(p).unwrap()).collect();
    assert_eq!(read(&mut r, 0), (0, vec![]));
    assert_eq!(k.consumer_pos(), 0);
    for (i, chunk) in sent.chunks(3).enumerate() {
        assert_eq!(read(&mut r, 3), (chunk.len(), chunk.to_vec()));
        let last = recs[i * 3 + chunk.len() - 1];
        assert_eq!(k.consumer_pos(), last.end());
        assert_eq!(r.pending_bytes(), k.producer_pos() - last.end());
    }
    assert_eq!(read(&mut r, 3), (0, vec![]));
}

/// Records that cross the end of the data area, as the kernel's double
/// mapping shows them: a payload split across the end, a header in the last
/// 8 bytes, a record ending exactly at the end, a discarded one across it.
fn wrap_around(name: &str, size: usize) {
    let k = KernelRing::new(name, size);
    let mut r = k.reader();
    let cases: [(usize, &[usize]); 4] = [
        (size - 24, &[100, 50]),
        (size - 8, &[200, 8]),
        (size - 64, &[56, 3]),
        (size - 16, &[5000, 40]),
    ];
    for (seq, (off, lens)) in (0..).zip(cases) {
        k.advance_to(&mut r, off);
        let sent: Vec<_> = lens.iter().map(|&l| pattern(seq, l)).collect();
        let recs: Vec<_> = sent.iter().map(|p| k.output(p).unwrap()).collect();
        assert_eq!(recs[0].pos % size, off);
        assert!(recs[1].pos % size < off);
        assert_eq!(read(&mut r, 1), (1, sent[..1].to_vec()));
        // The window holds the first record, reaching into the second copy.
        let (start, wlen) = window(&r).unwrap();
        assert!(start <= off && off + total(lens[0]) <= start + wlen);
        assert!(start + wlen > size && wlen == WINDOW.min(2 * size - start));
        assert_mapped(&k, start, wlen);
        assert_eq!(read(&mut r, usize::MAX), (1, sent[1..].to_vec()));
        assert_eq!(k.consumer_pos(), recs[1].end());
    }
    // A discarded record across the end is skipped whole.
    k.advance_to(&mut r, size - 32);
    let d = k.reserve(300).unwrap();
    k.commit(d, true);
    let p = pattern(9, 77);
    let after = k.output(&p).unwrap();
    assert_eq!(after.pos, d.end());
    assert_eq!(read(&mut r, usize::MAX), (2, vec![p]));
    assert_eq!(k.consumer_pos(), after.end());
    // The positions are not masked: the reader went round several times.
    assert!(k.consumer_pos() > 4 * size);
}

#[test]
fn a_record_split_across_the_end_is_read_whole() {
    wrap_around("tracer-ring-wrap-small", 4 * page());
}

#[test]
fn a_record_split_across_the_end_of_a_ring_larger_than_the_window() {
    wrap_around("tracer-ring-wrap-large", 2 * WINDOW);
}

#[test]
fn a_busy_record_stops_the_reader_until_it_is_committed() {
    let k = KernelRing::new("tracer-ring-busy", 16 * page());
    let mut r = k.reader();
    let (a, b, c) = (pattern(1, 30), pattern(2, 200), pattern(3, 12));
    k.output(&a).unwrap();
    let rb = k.reserve(b.len()).unwrap();
    let rc = k.output(&c).unwrap(); // committed after a busy one
    assert_eq!(read(&mut r, usize::MAX), (1, vec![a]));
    assert_eq!(k.consumer_pos(), rb.pos);
    // Bytes are left, so the caller keeps the ring readable.
    assert_eq!(r.pending_bytes(), total(200) + total(12));
    assert_eq!(read(&mut r, usize::MAX), (0, vec![]));
    assert_eq!(k.consumer_pos(), rb.pos);
    k.fill(rb, &b);
    assert_eq!(read(&mut r, usize::MAX), (0, vec![]));
    k.commit(rb, false);
    assert_eq!(read(&mut r, usize::MAX), (2, vec![b, c]));
    assert_eq!(k.consumer_pos(), rc.end());
    assert_eq!(r.pending_bytes(), 0);
    // A busy record later discarded.
    let rd = k.reserve(40).unwrap();
    assert_eq!(read(&mut r, usize::MAX), (0, vec![]));
    assert_eq!(r.pending_bytes(), total(40));
    k.commit(rd, true);
    assert_eq!(read(&mut r, usize::MAX), (1, vec![]));
    assert_eq!(r.pending_bytes(), 0);
}

#[test]
fn discarded_records_are_skipped_and_consumed() {
    let k = KernelRing::new("tracer-ring-discard", 16 * page());
    let mut r = k.reader();
    let discard = |len: usize| {
        let rec = k.reserve(len).unwrap();
        k.fill(rec, &pattern(99, len));
        k.commit(rec, true);
        rec
    };
    let (a, c) = (pattern(1, 10), pattern(3, 1000));
    k.output(&a).unwrap();
    discard(64);
    k.output(&c).unwrap();
    let d = discard(5);
    // Discarded records count as consumed, their bytes too.
    assert_eq!(read(&mut r, usize::MAX), (4, vec![a, c]));
    assert_eq!(k.consumer_pos(), d.end());
    assert_eq!(r.pending_bytes(), 0);
    // And they count towards the batch limit.
    let f = pattern(6, 20);
    discard(0);
    k.output(&f).unwrap();
    let g = discard(33);
    assert_eq!(read(&mut r, 2), (2, vec![f]));
    assert_eq!(k.consumer_pos(), g.pos);
    assert_eq!(r.pending_bytes(), total(33));
    assert_eq!(read(&mut r, 2), (1, vec![]));
    assert_eq!(k.consumer_pos(), g.end());
}

#[test]
fn the_window_follows_the_consumer_over_many_records() {
    let size = 4 * WINDOW;
    let k = KernelRing::new("tracer-ring-window", size);
    let (mut r, page) = (k.reader(), k.page);
    let mut queue = std::collections::VecDeque::new();
    let (mut seq, mut moves, mut back, mut laps) = (0u64, 0, 0, 0);
    let (mut last_off, mut prev) = (0, None);
    while k.consumer_pos() < 3 * size + size / 2 {
        for _ in 0..300 {
            let p = pattern(seq, (seq as usize * 37) % 3001);
            let Some(rec) = k.output(&p) else { break };
            queue.push_back((rec, p));
            seq += 1;
        }
        loop {
            let (n, got) = read(&mut r, 64);
            if n == 0 {
                break;
            }
            let mut last = None;
            for p in got {
                let (rec, sent) = queue.pop_front().unwrap();
                assert_eq!(p, sent);
                let off = rec.pos & (size - 1);
                laps += usize::from(off < last_off);
                last_off = off;
                last = Some(rec);
            }
            let last = last.unwrap();
            assert_eq!(k.consumer_pos(), last.end());
            // The window holds the last record read, and is no bigger.
            let (start, wlen) = window(&r).unwrap();
            let off = last.pos & (size - 1);
            assert!(start.is_multiple_of(page) && start <= off && wlen == WINDOW);
            assert!(off + total(last.len) <= start + wlen);
            if prev != Some(start) {
                if let Some(p) = prev {
                    moves += 1;
                    if start < p {
                        back += 1;
                    } else {
                        // Forward only once a record no longer fitted.
                        assert!(start + page + total(3000) > p + WINDOW, "{p} -> {start}");
                    }
                }
                assert_mapped(&k, start, wlen);
                prev = Some(start);
            }
        }
    }
    assert!(queue.is_empty());
    assert_eq!(back, laps);
    assert_eq!(laps, 3);
    assert!(moves >= 3 * size / WINDOW, "{moves} moves");
}

#[test]
fn a_consumer_catches_up_after_the_producer_ran_far_ahead() {
    let size = 4 * WINDOW;
    let k = KernelRing::new("tracer-ring-catch-up", size);
    let mut r = k.reader();
    let mut seq = 0u64;
    // Three times: the producer fills the ring while the reader sleeps,
    // then the reader takes everything in one call.
    for _ in 0..3 {
        let sent = produce(&k, &mut seq, usize::MAX);
        assert!(r.pending_bytes() > size - total(2000));
        assert_eq!(r.pending_bytes(), k.producer_pos() - k.consumer_pos());
        assert_eq!(read(&mut r, usize::MAX), (sent.len(), sent));
        assert_eq!(k.consumer_pos(), k.producer_pos());
        assert_mapped(&k, window(&r).unwrap().0, WINDOW);
    }
    // Then, from a full ring, a reader that reads faster than the producer
    // writes catches up.
    let mut sent: std::collections::VecDeque<_> = produce(&k, &mut seq, usize::MAX).into();
    let mut rounds = 0;
    loop {
        sent.extend(produce(&k, &mut seq, 300));
        let (n, got) = read(&mut r, 1000);
        assert_eq!(n, got.len());
        for p in got {
            assert_eq!(Some(p), sent.pop_front());
        }
        rounds += 1;
        if n < 1000 {
            break;
        }
    }
    assert!(rounds > 3, "{rounds} rounds");
    assert!(sent.is_empty());
    assert_eq!(r.pending_bytes(), 0);
    assert_eq!(k.consumer_pos(), k.producer_pos());
}

/// Outputs (and returns) up to `max` records after `seq`, fewer if full.
fn produce(k: &KernelRing, seq: &mut u64, max: usize) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    while sent.len() < max {
        let s = *seq + 1;
        let p = pattern(s, (s as usize * 53) % 2000 + 1);
        if k.output(&p).is_none() {
            break;
        }
        *seq += 1;
        sent.push(p);
    }
    sent
}

#[test]
fn the_consumer_position_is_written_back_as_the_kernel_reads_it() {
    let size = 16 * page();
    let k = KernelRing::new("tracer-ring-position", size);
    let mut r = k.reader();
    let recs: Vec<_> = (0..5).map(|s| k.output(&pattern(s, 99)).unwrap()).collect();
    for rec in recs {
        assert_eq!(read(&mut r, 1).0, 1);
        assert_eq!(k.consumer_pos(), rec.end());
    }
    // A full ring takes no more records until the reader gives space back.
    while k.output(&pattern(7, 500)).is_some() {}
    assert!(k.reserve(500).is_none());
    assert_eq!(read(&mut r, 1).0, 1);
    let last = k.output(&pattern(7, 500)).unwrap();
    // A new reader starts where the consumer page says.
    drop(r);
    assert!(reader_mappings(&k).is_empty());
    let mut r = k.reader();
    assert_eq!(r.pending_bytes(), k.producer_pos() - k.consumer_pos());
    // Each record's space is given back as it is read, not after the batch.
    let mut at = k.consumer_pos();
    let mut check = |p: &[u8]| {
        assert_eq!(k.consumer_pos(), at);
        assert_eq!(p, pattern(7, 500));
        at += total(500);
    };
    assert_eq!(
        r.read(usize::MAX, &mut check).unwrap(),
        (size - 1) / total(500)
    );
    assert_eq!(k.consumer_pos(), last.end());
}

#[test]
fn impossible_input_is_an_error() {
    let k = KernelRing::new("tracer-ring-bad", 4 * page());
    let mut r = k.reader();
    let rec = k.reserve(16).unwrap();
    k.header(0, 0, 0)
        .store((4 * page() + 8) as u32, Ordering::SeqCst);
    let e = r.read(usize::MAX, |_| panic!("no record")).unwrap_err();
    assert!(e.to_string().contains("bytes in a"), "{e}");
    assert_eq!(k.consumer_pos(), rec.pos);
}

#[test]
fn a_concurrent_producer_and_the_reader_agree() {
    const N: u64 = 100_000;
    let k = KernelRing::new("tracer-ring-threads", 16 * page());
    let mut r = k.reader();
    let kept = |s: u64| !s.is_multiple_of(11);
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for s in 0..N {
                let len = (s as usize * 13) % 300;
                let rec = loop {
                    if let Some(rec) = k.reserve(len) {
                        break rec;
                    }
                    assert!(Instant::now() < deadline, "the ring stayed full");
                    std::thread::yield_now();
                };
                k.fill(rec, &pattern(s, len));
                if s.is_multiple_of(7) {
                    std::thread::yield_now(); // busy for a while
                }
                k.commit(rec, !kept(s));
            }
        });
        let mut want = (0..N).filter(|&s| kept(s)).peekable();
        while want.peek().is_some() {
            assert!(Instant::now() < deadline, "{:?} never came", want.peek());
            let (_, got) = read(&mut r, 64);
            if got.is_empty() {
                std::thread::yield_now();
            }
            for p in got {
                let s = want.next().unwrap();
                assert_eq!(p, pattern(s, (s as usize * 13) % 300), "record {s}");
            }
        }
    });
    assert_eq!(read(&mut r, usize::MAX).1, Vec::<Vec<u8>>::new());
    assert_eq!(k.consumer_pos(), k.producer_pos());
    assert_eq!(r.pending_bytes(), 0);
}
