//! sched:sched_process_exec: the path a process executed, so that processes
//! that exit before userspace looks at /proc are still named by their exe.
use aya_ebpf::{
    EbpfContext, helpers::generated::bpf_probe_read_kernel, macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{ExecEvent, NO_OFFSET, PATH_MAX_COPY, source};

use crate::{emit::reserve_uncounted, maps::config};

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        if cfg.tp_exec_filename == NO_OFFSET {
            return None;
        }
        // __data_loc: low 16 bits offset from the record start, high 16 bits length.
        // SAFETY: offset from the tracepoint's format file.
        let loc: u32 = unsafe { ctx.read_at(cfg.tp_exec_filename as usize) }.ok()?;
        let off = (loc & 0xffff) as usize;
        let len = loc >> 16;
        let max = PATH_MAX_COPY as u32 - 1;
        let n: u32 = if len > max { max } else { len };
        // SAFETY: reading a local; see netlink_tp::copy_len.
        let n = unsafe { core::ptr::read_volatile(&n) } & max;
        // Exec events are not worth a lost count: the exe is best effort.
        let mut entry = reserve_uncounted::<ExecEvent>(cfg, source::TRACEPOINT)?;
        let ev = entry.as_mut_ptr();
        unsafe {
            (*ev)._pad0 = 0;
            let src = (ctx.as_ptr() as *const u8).wrapping_add(off);
            let rc =
                bpf_probe_read_kernel((*ev).filename.as_mut_ptr() as *mut _, n, src as *const _);
            (*ev).filename_len = if rc == 0 { n } else { 0 };
        }
        entry.submit(0);
        Some(())
    })();
    0
}
