//! Identity of the current task, written into every event header.
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
    bpf_probe_read_kernel_buf,
};
use tracer_common::{COMM_LEN, Config, EventHeader, NO_OFFSET};

use crate::read::{kptr, kread};

/// Fill `h` for an event of `kind` and `len` bytes from `source`.
///
/// # Safety
/// `h` must point to writable memory (a ring-buffer reservation).
#[inline(always)]
pub unsafe fn fill_header(h: *mut EventHeader, cfg: &Config, kind: u16, source: u8, len: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent = kptr(task, cfg.task_real_parent).unwrap_or(core::ptr::null());
    let ppid: i32 = kread(parent, cfg.task_tgid).unwrap_or(0);
    let netns = kptr(task, cfg.task_nsproxy)
        .and_then(|ns| kptr(ns, cfg.nsproxy_net_ns))
        .and_then(|net| kread::<u32>(net, cfg.net_inum))
        .unwrap_or(0);
    unsafe {
        (*h).kind = kind;
        (*h).source = source;
        (*h)._pad0 = 0;
        (*h).len = len;
        (*h).ts_ns = bpf_ktime_get_boot_ns();
        (*h).pid = (pid_tgid >> 32) as u32;
        (*h).tid = pid_tgid as u32;
        (*h).ppid = ppid as u32;
        (*h).uid = bpf_get_current_uid_gid() as u32;
        (*h).netns = netns;
        (*h)._pad1 = 0;
        (*h).cgroup_id = bpf_get_current_cgroup_id();
        (*h).comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
        (*h).parent_comm = [0; COMM_LEN];
        if !parent.is_null() && cfg.task_comm != NO_OFFSET {
            let _ = bpf_probe_read_kernel_buf(
                parent.wrapping_add(cfg.task_comm as usize),
                &mut (*h).parent_comm,
            );
        }
    }
}

/// Thread id of the current task.
#[inline(always)]
pub fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}
