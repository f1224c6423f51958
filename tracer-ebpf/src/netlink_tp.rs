//! Tracepoint path: rtnetlink requests read from the memory of the process
//! that sends them (sys_enter_sendmsg/sendto/sendmmsg), and the kernel's
//! answers read from the buffer the same thread receives into
//! (sys_enter/sys_exit of recvmsg/recvfrom).
//!
//! Only buffers written to a NETLINK_ROUTE socket are copied: the socket is
//! found from the file descriptor through the task's file table, with
//! offsets from BTF.
use aya_ebpf::{
    helpers::{bpf_get_current_task, generated::bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{Config, NL_DATA_MAX, NO_OFFSET, NlAckEvent, NlMsgEvent, source, syscall};

use crate::{
    emit::{reserve, send_nl_copy},
    maps::{NL_NETNS, NL_SENDERS, RECV_PENDING, config},
    read::{kptr, kread, uread},
    task::current_tid,
};

const AF_NETLINK: u16 = 16;
const NETLINK_ROUTE: u16 = 0;
const NLMSG_ERROR: u16 = 2;
/// Most sendmmsg entries inspected per call.
const MMSG_MAX: u32 = 4;
/// Iovecs copied per msghdr (each as its own record).
const IOV_MAX: u64 = 4;

/// rtnetlink message types that change state the tracer reports on:
/// links (16 NEWLINK, 17 DELLINK, 19 SETLINK), addresses (20, 21),
/// routes (24, 25), rules (32, 33) and nexthop objects (104 NEWNEXTHOP,
/// 105 DELNEXTHOP). GET requests are never copied.
#[inline(always)]
fn interesting(msg_type: u16) -> bool {
    matches!(
        msg_type,
        16 | 17 | 19 | 20 | 21 | 24 | 25 | 32 | 33 | 104 | 105
    )
}

/// Bytes of a `len`-byte buffer to copy: the mask lets every verifier
/// (6.1's included) prove the bound, so at most NL_DATA_MAX - 1 bytes.
#[inline(always)]
pub fn copy_len(len: u64) -> u32 {
    let max = NL_DATA_MAX as u64 - 1;
    let n = (if len > max { max } else { len }) as u32;
    // The volatile re-read hides the bound from LLVM, so the mask stays in
    // the bytecode for verifiers that lose bounds across stack spills.
    // SAFETY: reading a local.
    unsafe { core::ptr::read_volatile(&n) & (NL_DATA_MAX as u32 - 1) }
}

#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, off: u32) -> Option<T> {
    if off == NO_OFFSET {
        return None;
    }
    // SAFETY: the offset comes from the tracepoint's format file.
    unsafe { ctx.read_at::<T>(off as usize).ok() }
}

/// Whether `fd` of the current task is a NETLINK_ROUTE socket. None when the
/// file table cannot be walked on this kernel (offsets unresolved).
#[inline(always)]
fn is_route_socket(cfg: &Config, fd: i32) -> Option<bool> {
    if fd < 0 {
        return Some(false);
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files = kptr(task, cfg.task_files)?;
    let fdt = kptr(files, cfg.files_fdt)?;
    let max: u32 = kread(fdt, cfg.fdt_max_fds)?;
    if fd as u32 >= max {
        return Some(false);
    }
    let fds = kptr(fdt, cfg.fdt_fd)?;
    let file = kptr(fds, (fd as u32) * 8)?;
    let sock = kptr(file, cfg.file_private_data)?;
    let sk = kptr(sock, cfg.socket_sk)?;
    let family: u16 = kread(sk, cfg.sk_family)?;
    let proto: u16 = kread(sk, cfg.sk_protocol)?;
    Some(family == AF_NETLINK && proto == NETLINK_ROUTE)
}

/// Whether the current task's network namespace is one userspace watches.
#[inline(always)]
fn netns_watched(cfg: &Config) -> bool {
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let inum: Option<u32> = kptr(task, cfg.task_nsproxy)
        .and_then(|ns| kptr(ns, cfg.nsproxy_net_ns))
        .and_then(|net| kread(net, cfg.net_inum));
    // Unreadable: keep the request rather than lose it.
    inum.is_none_or(|i| unsafe { NL_NETNS.get(&i) }.is_some())
}

/// Copy the netlink buffer `buf` of `len` bytes, sent by the current thread
/// on `fd`, into the ring buffer if it starts with an interesting request.
#[inline(always)]
fn emit_request(cfg: &Config, sc: u8, fd: i32, buf: u64, len: u64) -> Option<()> {
    let base = buf as *const u8;
    let msg_type: u16 = uread(base, cfg.nlh_type)?;
    if !interesting(msg_type) || len < 16 {
        return None;
    }
    if is_route_socket(cfg, fd) == Some(false) {
        return None;
    }
    if cfg.netns_filter != 0 && !netns_watched(cfg) {
        return None;
    }
    send_nl_copy::<NlMsgEvent>(cfg, source::TRACEPOINT, |ev| {
        let n = copy_len(len);
        // SAFETY: `ev` is the CPU's scratch record, `n` below its data's
        // size.
        unsafe {
            (*ev).syscall = sc;
            (*ev).truncated = (len > n as u64) as u8;
            (*ev)._pad0 = 0;
            (*ev).fd = fd;
            (*ev).ret = 0;
            let rc = bpf_probe_read_user((*ev).data.as_mut_ptr() as *mut _, n, base as *const _);
            (*ev).data_len = if rc == 0 { n } else { 0 };
            (*ev).data_len
        }
    })?;
    let _ = NL_SENDERS.insert(&current_tid(), &1u8, 0);
    Some(())
}

/// The first iovec of a user msghdr: (base, len).
#[inline(always)]
fn first_iov(cfg: &Config, msg: *const u8) -> Option<(u64, u64)> {
    nth_iov(cfg, msg, 0)
}

/// Iovec `i` of a user msghdr: (base, len), if it has that many.
#[inline(always)]
fn nth_iov(cfg: &Config, msg: *const u8, i: u64) -> Option<(u64, u64)> {
    let iov: u64 = uread(msg, cfg.msghdr_iov)?;
    let iovlen: u64 = uread(msg, cfg.msghdr_iovlen)?;
    if i >= iovlen || (i > 0 && cfg.iovec_size == NO_OFFSET) {
        return None;
    }
    let iov = (iov + i * u64::from(cfg.iovec_size)) as *const u8;
    Some((uread(iov, cfg.iovec_base)?, uread(iov, cfg.iovec_len)?))
}

/// If the msghdr names a destination, it must be a netlink address.
#[inline(always)]
fn netlink_dest(cfg: &Config, addr: u64) -> bool {
    if addr == 0 {
        return true;
    }
    matches!(
        uread::<u16>(addr as *const u8, cfg.sockaddr_family),
        Some(AF_NETLINK)
    )
}

#[inline(always)]
fn from_msghdr(cfg: &Config, sc: u8, fd: i32, msg: *const u8) -> Option<()> {
    let name: u64 = uread(msg, cfg.msghdr_name)?;
    if !netlink_dest(cfg, name) {
        return None;
    }
    // The kernel reads a datagram across all its iovecs; clients that put
    // each message in an iovec of its own are read one iovec a record.
    for i in 0..IOV_MAX {
        let Some((base, len)) = nth_iov(cfg, msg, i) else {
            break;
        };
        emit_request(cfg, sc, fd, base, len);
    }
    Some(())
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let fd: i32 = field(&ctx, cfg.tp_sendmsg_fd)?;
        let msg: u64 = field(&ctx, cfg.tp_sendmsg_msg)?;
        from_msghdr(cfg, syscall::SENDMSG, fd, msg as *const u8)
    })();
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let fd: i32 = field(&ctx, cfg.tp_sendto_fd)?;
        let buf: u64 = field(&ctx, cfg.tp_sendto_buff)?;
        let len: u64 = field(&ctx, cfg.tp_sendto_len)?;
        let addr: u64 = field(&ctx, cfg.tp_sendto_addr)?;
        if !netlink_dest(cfg, addr) {
            return None;
        }
        emit_request(cfg, syscall::SENDTO, fd, buf, len)
    })();
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmmsg")]
pub fn sys_enter_sendmmsg(ctx: TracePointContext) -> u32 {
    let _ = (|| {
        let cfg = config()?;
        let fd: i32 = field(&ctx, cfg.tp_sendmmsg_fd)?;
        let vec: u64 = field(&ctx, cfg.tp_sendmmsg_mmsg)?;
        let vlen: u32 = field(&ctx, cfg.tp_sendmmsg_vlen)?;
        if cfg.mmsghdr_size == NO_OFFSET {
            return None;
        }
        // Batches of datagrams are mostly UDP: the socket is checked
        // once here, before any message is read.
        if is_route_socket(cfg, fd) == Some(false) {
            return None;
        }
        for i in 0..MMSG_MAX {
            if i >= vlen {
                break;
            }
            let msg = (vec + (i * cfg.mmsghdr_size) as u64) as *const u8;
            from_msghdr(cfg, syscall::SENDMMSG, fd, msg);
        }
        Some(())
    })();
    0
}

#[inline(always)]
fn recv_enter(ptr: u64, is_msghdr: u64) {
    let tid = current_tid();
    // SAFETY: read-only lookup of a plain value.
    if unsafe { NL_SENDERS.get(&tid) }.is_some() {
        let _ = RECV_PENDING.insert(&tid, &[ptr, is_msghdr], 0);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvmsg")]
pub fn sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    if let Some(cfg) = config() {
        if let Some(msg) = field::<u64>(&ctx, cfg.tp_recvmsg_msg) {
            recv_enter(msg, 1);
        }
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvfrom")]
pub fn sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    if let Some(cfg) = config() {
        if let Some(buf) = field::<u64>(&ctx, cfg.tp_recvfrom_ubuf) {
            recv_enter(buf, 0);
        }
    }
    0
}

/// At the end of a receive, report an NLMSG_ERROR (ack or error) at the
/// start of the buffer.
#[inline(always)]
fn recv_exit(ctx: &TracePointContext) -> Option<()> {
    let cfg = config()?;
    let tid = current_tid();
    // SAFETY: the value is copied out before the entry is removed.
    let [ptr, is_msghdr] = *unsafe { RECV_PENDING.get(&tid) }?;
    let _ = RECV_PENDING.remove(&tid);
    let ret: i64 = field(ctx, cfg.tp_exit_ret)?;
    if ret < 20 {
        return None;
    }
    let buf = if is_msghdr == 1 {
        first_iov(cfg, ptr as *const u8)?.0
    } else {
        ptr
    } as *const u8;
    if uread::<u16>(buf, cfg.nlh_type)? != NLMSG_ERROR {
        return None;
    }
    let error: i32 = uread(buf, 16 + cfg.nlmsgerr_error)?;
    let orig = buf.wrapping_add(16 + cfg.nlmsgerr_msg as usize);
    let mut entry = reserve::<NlAckEvent>(cfg, source::TRACEPOINT)?;
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).error = error;
        (*ev).seq = uread(orig, cfg.nlh_seq).unwrap_or(0);
        (*ev).msg_type = uread(orig, cfg.nlh_type).unwrap_or(0);
        (*ev)._pad0 = 0;
        (*ev).portid = uread(orig, cfg.nlh_pid).unwrap_or(0);
    }
    entry.submit(0);
    Some(())
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvmsg")]
pub fn sys_exit_recvmsg(ctx: TracePointContext) -> u32 {
    let _ = recv_exit(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvfrom")]
pub fn sys_exit_recvfrom(ctx: TracePointContext) -> u32 {
    let _ = recv_exit(&ctx);
    0
}
