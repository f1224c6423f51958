//! syscalls:sys_enter_umount (umount2 on x86-64 and arm64): the path a
//! process unmounts, so that a network namespace that ends with its bind
//! mount (`ip netns del`, Docker) is credited to that process. Unmounts
//! are rare: one bounded string copy per call, nothing else.
use aya_ebpf::{
    helpers::generated::bpf_probe_read_user_str, macros::tracepoint, programs::TracePointContext,
};
use tracer_common::{NO_OFFSET, PATH_MAX_COPY, UmountEvent, source};

use crate::{emit::reserve, maps::config};

#[tracepoint(category = "syscalls", name = "sys_enter_umount")]
pub fn sys_enter_umount(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        if cfg.tp_umount_name == NO_OFFSET {
            return None;
        }
        // SAFETY: offset from the tracepoint's format file.
        let name: u64 = unsafe { ctx.read_at(cfg.tp_umount_name as usize) }.ok()?;
        if name == 0 {
            return None;
        }
        let mut entry = reserve::<UmountEvent>(cfg, source::TRACEPOINT)?;
        let ev = entry.as_mut_ptr();
        // SAFETY: `ev` is the reservation, PATH_MAX_COPY bytes of path.
        unsafe {
            (*ev)._pad0 = 0;
            let rc = bpf_probe_read_user_str(
                (*ev).path.as_mut_ptr() as *mut _,
                PATH_MAX_COPY as u32,
                name as *const _,
            );
            // The count includes the NUL.
            (*ev).path_len = if rc > 0 { rc as u32 - 1 } else { 0 };
        }
        entry.submit(0);
        Some(())
    })();
    0
}
