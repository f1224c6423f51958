//! Function arguments by a runtime index (resolved from BTF by userspace).
//! Tracing programs may only read their context at constant offsets, so
//! fexit programs ask the kernel with bpf_get_func_arg instead.
use aya_ebpf::{
    EbpfContext,
    helpers::generated::bpf_get_func_arg,
    programs::{FExitContext, ProbeContext},
};
use tracer_common::{Config, NO_OFFSET};

use crate::read::kread;

/// Argument `n` of an fexit program as a kernel pointer, read with
/// bpf_get_func_arg (Linux 5.17+), which accepts a runtime index.
#[inline(always)]
pub fn fexit_arg(ctx: &FExitContext, n: u32) -> Option<*const u8> {
    if n == NO_OFFSET {
        return None;
    }
    let mut v: u64 = 0;
    // SAFETY: the helper checks `n` against the traced function's arguments.
    let rc = unsafe { bpf_get_func_arg(ctx.as_ptr(), n, &mut v) };
    if rc == 0 { Some(v as *const u8) } else { None }
}

/// Argument `n` of a kprobe as a kernel pointer. Which register holds it
/// depends on the architecture's calling convention; userspace resolves the
/// offset of that register inside the running kernel's `struct pt_regs`
/// from BTF (`Config::kprobe_regs`), and the register is read from the
/// probe's saved registers with bpf_probe_read_kernel (the verifier allows
/// only constant-offset loads from the context itself).
#[inline(always)]
pub fn kprobe_arg(ctx: &ProbeContext, cfg: &Config, n: u32) -> Option<*const u8> {
    let off = *cfg.kprobe_regs.get(n as usize)?;
    // Bounded for the verifier; a real pt_regs is a few hundred bytes.
    if off >= MAX_PT_REGS_OFFSET {
        return None;
    }
    let v: u64 = kread(ctx.regs as *const u8, off)?;
    Some(v as *const u8)
}

/// Larger than `struct pt_regs` on every supported architecture.
const MAX_PT_REGS_OFFSET: u32 = 4096;

// The kprobe argument registers come from the running kernel's BTF, but
// userspace knows the calling convention (which registers) only for these
// architectures: an object for any other would read the wrong registers.
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
compile_error!(
    "tracer-ebpf: kprobe argument registers are known for x86_64 and aarch64 only \
     (tracer/src/kernel/offsets.rs, kprobe_arg_registers)"
);

/// `a + b`, or NO_OFFSET if either is unresolved.
#[inline(always)]
pub fn off_add(a: u32, b: u32) -> u32 {
    if a == NO_OFFSET || b == NO_OFFSET {
        NO_OFFSET
    } else {
        a + b
    }
}
