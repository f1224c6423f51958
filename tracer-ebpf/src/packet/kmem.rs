//! The packet programs' offsets, and two ways of reading kernel memory at
//! them.
//!
//! The offsets are a read-only global ([`PKT_OFFSETS`], in `.rodata`) that
//! userspace fills from BTF and tracefs before the object is loaded, so
//! the verifier knows each one as a constant. That is what makes
//! [`Direct`] possible: in a BTF-enabled tracepoint the `sk_buff` argument
//! is a typed pointer, and a load at a constant offset into it (or into
//! the `net_device` and `net` reached from it) is checked against the
//! kernel's BTF and compiled to a plain load. Raw and classic tracepoints
//! hand over an untyped address and go through [`Probe`]
//! (bpf_probe_read_kernel, a helper call per read).
use tracer_common::{NO_OFFSET, PacketConfig};

use crate::read::kget;

/// Written by userspace before loading (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
pub(super) static PKT_OFFSETS: PacketConfig = PacketConfig::unresolved();

/// One offset of [`PKT_OFFSETS`], read so that the compiler cannot fold
/// the placeholder value in.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: a read of an immutable global.
        unsafe { core::ptr::read_volatile(&$crate::packet::kmem::PKT_OFFSETS.$field) }
    };
}
pub(crate) use off;

/// Reads a `T` at `base + off` of kernel memory: zero when the offset is
/// unresolved or the memory cannot be read.
pub trait Kmem {
    fn get<T: Copy + Default>(base: *const u8, off: u32) -> T;

    #[inline(always)]
    fn ptr(base: *const u8, off: u32) -> *const u8 {
        Self::get::<u64>(base, off) as *const u8
    }
}

/// Plain loads through BTF-typed pointers (tp_btf programs only: the
/// verifier rejects them anywhere else).
pub struct Direct;

impl Kmem for Direct {
    #[inline(always)]
    fn get<T: Copy + Default>(base: *const u8, off: u32) -> T {
        if off == NO_OFFSET {
            return T::default();
        }
        // SAFETY: the verifier checks the access against the pointer's BTF
        // type, and a fault (a NULL device) reads as zero.
        unsafe { core::ptr::read_volatile(base.wrapping_add(off as usize) as *const T) }
    }
}

/// bpf_probe_read_kernel.
pub struct Probe;

impl Kmem for Probe {
    #[inline(always)]
    fn get<T: Copy + Default>(base: *const u8, off: u32) -> T {
        kget(base, off)
    }
}
