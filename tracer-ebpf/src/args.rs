//! Function arguments by an index resolved from BTF by userspace.
//!
//! fexit programs read their context (the traced function's arguments,
//! then its return value, as u64 slots) directly. The verifier allows a
//! context load only at an offset fixed in the instruction, so the slot
//! numbers are a read-only global ([`FEXIT_ARGS`], frozen `.rodata`) that
//! userspace writes before loading: the verifier knows each as a constant
//! and follows only the load for that slot. No helper is needed
//! (bpf_get_func_arg and bpf_get_func_ret exist only from Linux 5.17), so
//! the same programs load on every kernel with BPF trampolines.
//!
//! kprobes read the argument registers saved in `struct pt_regs`.
use aya_ebpf::{
    EbpfContext,
    programs::{FExitContext, ProbeContext},
};
use tracer_common::{Config, FEXIT_CTX_SLOTS, FexitArgs, FexitSlots, NO_OFFSET};

use crate::read::kread;

/// Written by userspace before loading (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
static FEXIT_ARGS: FexitArgs = FexitArgs::unresolved();

/// Which fexit program's slots to read.
#[derive(Clone, Copy)]
pub enum Fexit {
    Route4Del,
    Route4Add,
    Route6Del,
    Route6Add,
    Flush,
    RuleDel,
    RuleAdd,
    NexthopDel,
    NexthopAdd,
}

/// The slots of one fexit program, read so that the compiler cannot fold
/// the placeholder values in (the verifier knows the real ones).
#[inline(always)]
pub fn fexit_slots(which: Fexit) -> FexitSlots {
    let s = match which {
        Fexit::Route4Del => &FEXIT_ARGS.route4_del,
        Fexit::Route4Add => &FEXIT_ARGS.route4_add,
        Fexit::Route6Del => &FEXIT_ARGS.route6_del,
        Fexit::Route6Add => &FEXIT_ARGS.route6_add,
        Fexit::Flush => &FEXIT_ARGS.flush,
        Fexit::RuleDel => &FEXIT_ARGS.rule_del,
        Fexit::RuleAdd => &FEXIT_ARGS.rule_add,
        Fexit::NexthopDel => &FEXIT_ARGS.nexthop_del,
        Fexit::NexthopAdd => &FEXIT_ARGS.nexthop_add,
    };
    // SAFETY: reads of an immutable global.
    unsafe {
        FexitSlots {
            first: core::ptr::read_volatile(&s.first),
            second: core::ptr::read_volatile(&s.second),
            ret: core::ptr::read_volatile(&s.ret),
        }
    }
}

/// Loads context slot `$slot` (a literal) with the offset in the
/// instruction itself: the verifier refuses a load through a context
/// pointer that arithmetic has moved, and inline assembly keeps LLVM from
/// merging the per-slot loads into one at a computed address.
///
/// A pointer argument loads as a typed kernel pointer (PTR_TO_BTF_ID),
/// whose arithmetic the verifier restricts (a constant such as an
/// unresolved offset's NO_OFFSET added to it is refused). The programs
/// only hand addresses to bpf_probe_read_kernel, as on the kprobe path,
/// so the value is made a plain number, as bpf_get_func_arg returned it:
/// negating a pointer yields an unknown scalar for a program that may
/// leak pointers (CAP_PERFMON, which tracing programs need anyway), and
/// negating it again restores the value.
macro_rules! ctx_slot {
    ($ctx:expr, $slot:literal) => {{
        let v: u64;
        // SAFETY: the verifier checks the slot against the traced
        // function's BTF signature (arguments, then the return value).
        unsafe {
            core::arch::asm!(
                "{v} = *(u64 *)({ctx} + {off})",
                "{v} = -{v}",
                "{v} = -{v}",
                v = lateout(reg) v,
                ctx = in(reg) $ctx,
                off = const $slot * 8,
                options(readonly, nostack, preserves_flags),
            )
        };
        Some(v)
    }};
}

/// Slot `n` of an fexit program's context: argument `n`, or the return
/// value when `n` is the function's argument count. None when unresolved.
/// `n` comes from [`FEXIT_ARGS`], a constant to the verifier.
#[inline(always)]
pub fn fexit_slot(ctx: &FExitContext, n: u32) -> Option<u64> {
    let c = ctx.as_ptr() as *const u64;
    match n {
        0 => ctx_slot!(c, 0),
        1 => ctx_slot!(c, 1),
        2 => ctx_slot!(c, 2),
        3 => ctx_slot!(c, 3),
        4 => ctx_slot!(c, 4),
        5 => ctx_slot!(c, 5),
        6 => ctx_slot!(c, 6),
        7 => ctx_slot!(c, 7),
        8 => ctx_slot!(c, 8),
        9 => ctx_slot!(c, 9),
        10 => ctx_slot!(c, 10),
        11 => ctx_slot!(c, 11),
        12 => ctx_slot!(c, 12),
        _ => None,
    }
}

// One arm per slot above.
const _: () = assert!(FEXIT_CTX_SLOTS == 13);

/// Argument `n` of an fexit program as a kernel pointer.
#[inline(always)]
pub fn fexit_arg(ctx: &FExitContext, n: u32) -> Option<*const u8> {
    fexit_slot(ctx, n).map(|v| v as *const u8)
}

/// The traced function's return value as an int (0 if unresolved).
#[inline(always)]
pub fn fexit_ret(ctx: &FExitContext, slots: &FexitSlots) -> i32 {
    fexit_slot(ctx, slots.ret).unwrap_or(0) as i32
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
