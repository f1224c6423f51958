//! Reading the eBPF ring buffer through a small sliding window.
//!
//! aya's `RingBuf` maps the whole data area, twice (the kernel lays it out
//! twice in a row so that a record never wraps), and the kernel inserts
//! every page at mmap time: a 32 MiB ring costs 64 MiB of the tracer's
//! resident memory before a single record is read. This reader maps the
//! two metadata pages and a [`WINDOW`]-byte window of the data area that
//! moves with the consumer position, so the ring's size (kernel memory, the
//! backlog it can hold) no longer shows in the tracer's RSS.
use std::{
    os::fd::{AsFd as _, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::MapData;

/// Bytes of the data area mapped at a time (a record is at most a few KiB).
pub const WINDOW: usize = 1 << 20;

/// Ring record header bits and size (linux/bpf.h).
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SZ: usize = 8;

/// One read-only or read-write shared mapping of the map's fd.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, write: bool, offset: usize) -> Result<Self> {
        let prot = libc::PROT_READ | if write { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping of a BPF ring buffer map; the kernel
        // checks the offset and length against the map.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping {len} bytes of the ring buffer at {offset}"));
        }
        let ptr = NonNull::new(p as *mut u8).ok_or_else(|| anyhow!("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut _, self.len) };
    }
}

/// The data window: `map` shows the data area from `start` (a page-aligned
/// offset into the doubled data area, below `size`).
struct Window {
    map: Mapping,
    start: usize,
}

/// A BPF_MAP_TYPE_RINGBUF consumer that keeps little of the ring mapped.
pub struct RingReader {
    /// Owns the fd the mappings and the poller use (the map's `MapData`).
    _owner: Box<dyn Send>,
    fd: RawFd,
    page: usize,
    /// Data area size (a power of two).
    size: usize,
    consumer: Mapping,
    producer: Mapping,
    window: Option<Window>,
    /// Our consumer position (mirrors the consumer page).
    pos: usize,
}

// SAFETY: the mappings are owned and only touched through `&mut self` (or
// atomically); the fd's owner is Send.
unsafe impl Send for RingReader {}

impl AsRawFd for RingReader {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl RingReader {
    /// A reader of the ring buffer map `map` whose data area is `size` bytes.
    pub fn new(map: MapData, size: usize) -> Result<Self> {
        let fd = map.fd().as_fd().as_raw_fd();
        Self::over_fd(Box::new(map), fd, size)
    }

    /// A reader of the ring buffer whose mappings come from `fd`, laid out
    /// as the kernel lays out a ring buffer map's (consumer page, producer
    /// page, then the data area twice); `owner` keeps `fd` open. The unit
    /// tests give it a memfd laid out that way.
    fn over_fd(owner: Box<dyn Send>, fd: RawFd, size: usize) -> Result<Self> {
        if !size.is_power_of_two() {
            bail!("ring buffer size {size} is not a power of two");
        }
        // SAFETY: sysconf has no preconditions.
        let page =
            usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).context("page size")?;
        let consumer = Mapping::new(fd, page, true, 0)?;
        let producer = Mapping::new(fd, page, false, page)?;
        let mut r = RingReader {
            _owner: owner,
            fd,
            page,
            size,
            consumer,
            producer,
            window: None,
            pos: 0,
        };
        r.pos = r.consumer_pos().load(Ordering::Acquire);
        Ok(r)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page is mapped, aligned and shared with the
        // kernel, which reads it atomically.
        unsafe { AtomicUsize::from_ptr(self.consumer.ptr.as_ptr() as *mut usize) }
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: as for the consumer page; the kernel writes it with release.
        unsafe { AtomicUsize::from_ptr(self.producer.ptr.as_ptr() as *mut usize) }
            .load(Ordering::Acquire)
    }

    /// Bytes written by the eBPF programs and not read yet.
    pub fn pending_bytes(&self) -> usize {
        self.producer_pos().wrapping_sub(self.pos)
    }

    /// The ring's data area size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Makes `[off, off + len)` of the doubled data area visible; returns
    /// its address.
    fn view(&mut self, off: usize, len: usize) -> Result<*const u8> {
        let fits = |w: &Window| off >= w.start && off + len <= w.start + w.map.len;
        if !self.window.as_ref().is_some_and(fits) {
            self.window = None;
            let start = off & !(self.page - 1);
            let wlen = WINDOW.max((off - start + len).next_multiple_of(self.page));
            let wlen = wlen.min(2 * self.size - start);
            let map = Mapping::new(self.fd, wlen, false, 2 * self.page + start)?;
            self.window = Some(Window { map, start });
        }
        let w = self.window.as_ref().expect("just mapped");
        // SAFETY: within the mapping, checked above.
        Ok(unsafe { w.map.ptr.as_ptr().add(off - w.start) })
    }

    /// Hands up to `max` committed records to `f`, in order; returns how
    /// many records (discarded ones included) were consumed.
    pub fn read(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize> {
        let mut n = 0;
        let mut prod = self.producer_pos();
        // The kernel wakes the poller only when it commits the record at the
        // consumer position it reads. Our store of that position and our
        // next load may be reordered (x86 store buffer): a full fence before
        // giving up makes sure that either we see the record or the producer
        // sees our position (the poller is edge-triggered, so a missed
        // wakeup would stall the ring for good).
        while n < max {
            if self.pos == prod {
                fence(Ordering::SeqCst);
                prod = self.producer_pos();
                if self.pos == prod {
                    break;
                }
            }
            let off = self.pos & (self.size - 1);
            let hdr = self.view(off, HDR_SZ)?;
            // SAFETY: the header is mapped and 8-byte aligned; the kernel
            // commits it with a fully ordered exchange.
            let header = unsafe { AtomicU32::from_ptr(hdr as *mut u32) };
            let mut word = header.load(Ordering::Acquire);
            if word & BUSY_BIT != 0 {
                fence(Ordering::SeqCst);
                word = header.load(Ordering::Acquire);
            }
            if word & BUSY_BIT != 0 {
                break;
            }
            let len = (word & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if len > self.size {
                bail!(
                    "ring buffer record of {len} bytes in a {}-byte ring",
                    self.size
                );
            }
            if word & DISCARD_BIT == 0 {
                let data = self.view(off, HDR_SZ + len)?;
                // SAFETY: the record is mapped (view) and committed (busy bit
                // clear); the kernel does not reuse it before we move on.
                f(unsafe { std::slice::from_raw_parts(data.add(HDR_SZ), len) });
            }
            self.pos = self.pos.wrapping_add((HDR_SZ + len).next_multiple_of(8));
            self.consumer_pos().store(self.pos, Ordering::Release);
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
