//! Function arguments by a runtime index (resolved from BTF by userspace).
//! Tracing programs may only read their context at constant offsets, so
//! fexit programs ask the kernel with bpf_get_func_arg instead.
use aya_ebpf::{
    EbpfContext,
    helpers::generated::bpf_get_func_arg,
    programs::{FExitContext, ProbeContext},
};
use tracer_common::NO_OFFSET;

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

/// Argument `n` of a kprobe as a kernel pointer. The verifier only allows
/// constant-offset reads of the register context, so every argument
/// register (x86-64 calling convention, as aya's own `arg` uses) is read
/// with a volatile load that the compiler cannot fold into a computed
/// address, and the index selects from the copies.
#[inline(always)]
pub fn kprobe_arg(ctx: &ProbeContext, n: u32) -> Option<*const u8> {
    if n == NO_OFFSET || n > 5 {
        return None;
    }
    let r = ctx.regs;
    // SAFETY: `regs` is the program's context; the reads are in bounds.
    let regs: [u64; 6] = unsafe {
        [
            core::ptr::read_volatile(&(*r).rdi),
            core::ptr::read_volatile(&(*r).rsi),
            core::ptr::read_volatile(&(*r).rdx),
            core::ptr::read_volatile(&(*r).rcx),
            core::ptr::read_volatile(&(*r).r8),
            core::ptr::read_volatile(&(*r).r9),
        ]
    };
    regs.get(n as usize).map(|v| *v as *const u8)
}

/// `a + b`, or NO_OFFSET if either is unresolved.
#[inline(always)]
pub fn off_add(a: u32, b: u32) -> u32 {
    if a == NO_OFFSET || b == NO_OFFSET {
        NO_OFFSET
    } else {
        a + b
    }
}
