//! Reading kernel and user memory at offsets handed over by userspace.
use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_user};
use tracer_common::NO_OFFSET;

/// Read a `T` at `base + off` in kernel memory; None if the offset is not
/// resolved on this kernel, the base is NULL or the read faults.
#[inline(always)]
pub fn kread<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == NO_OFFSET || base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T).ok() }
}

/// Read a pointer at `base + off` in kernel memory.
#[inline(always)]
pub fn kptr(base: *const u8, off: u32) -> Option<*const u8> {
    let p: u64 = kread(base, off)?;
    if p == 0 { None } else { Some(p as *const u8) }
}

/// Read a `T` at `base + off` in user memory.
#[inline(always)]
pub fn uread<T: Copy>(base: *const u8, off: u32) -> Option<T> {
    if off == NO_OFFSET || base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_user checks the address and fails cleanly.
    unsafe { bpf_probe_read_user(base.wrapping_add(off as usize) as *const T).ok() }
}
