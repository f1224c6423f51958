//! Identity of the current task, written into every event header.
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};
use tracer_common::{COMM_LEN, Config, EventHeader};

use crate::read::{kget, kget_ptr};

/// Fill `h` for an event of `kind` and `len` bytes from `source`.
///
/// # Safety
/// `h` must point to writable memory (a ring-buffer reservation).
#[inline(always)]
pub unsafe fn fill_header(h: *mut EventHeader, cfg: &Config, kind: u16, source: u8, len: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent = kget_ptr(task, cfg.task_real_parent);
    let ppid: i32 = kget(parent, cfg.task_tgid);
    let netns: u32 = kget(
        kget_ptr(kget_ptr(task, cfg.task_nsproxy), cfg.nsproxy_net_ns),
        cfg.net_inum,
    );
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
        (*h).parent_comm = kget(parent, cfg.task_comm);
    }
}

/// Thread id of the current task.
#[inline(always)]
pub fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}
