//! Function arguments by a runtime index (resolved from BTF by userspace).
//! Tracing programs may only read their context at constant offsets, so the
//! index is matched to a constant.
use aya_ebpf::programs::{FExitContext, ProbeContext};
use tracer_common::NO_OFFSET;

macro_rules! by_index {
    ($ctx:expr, $n:expr) => {
        match $n {
            0 => Some($ctx.arg::<u64>(0)),
            1 => Some($ctx.arg::<u64>(1)),
            2 => Some($ctx.arg::<u64>(2)),
            3 => Some($ctx.arg::<u64>(3)),
            4 => Some($ctx.arg::<u64>(4)),
            _ => None,
        }
    };
}

/// Argument `n` of an fexit program as a kernel pointer.
#[inline(always)]
pub fn fexit_arg(ctx: &FExitContext, n: u32) -> Option<*const u8> {
    if n == NO_OFFSET {
        return None;
    }
    by_index!(ctx, n).map(|v| v as *const u8)
}

/// Argument `n` of a kprobe as a kernel pointer.
#[inline(always)]
pub fn kprobe_arg(ctx: &ProbeContext, n: u32) -> Option<*const u8> {
    if n == NO_OFFSET || n > 5 {
        return None;
    }
    ctx.arg::<u64>(n as usize).map(|v| v as *const u8)
}

/// `a + b`, or NO_OFFSET if either is unresolved.
#[inline(always)]
pub fn off_add(a: u32, b: u32) -> u32 {
    if a == NO_OFFSET || b == NO_OFFSET { NO_OFFSET } else { a + b }
}
