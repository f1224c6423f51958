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

/// Branch-free read of a `T` at `base + off` in kernel memory: zero when
/// the read faults (bpf_probe_read_kernel zeroes its destination on
/// failure), when `base` is NULL or the offset unresolved. Programs that
/// read many fields use this so the verifier has no path per field.
#[inline(always)]
pub fn kget<T: Copy + Default>(base: *const u8, off: u32) -> T {
    let mut v = T::default();
    // SAFETY: the helper checks the source address; the destination is a
    // local of the right size.
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            &mut v as *mut T as *mut _,
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off as usize) as *const _,
        )
    };
    v
}

/// Branch-free pointer read (NULL on failure).
#[inline(always)]
pub fn kget_ptr(base: *const u8, off: u32) -> *const u8 {
    kget::<u64>(base, off) as *const u8
}
