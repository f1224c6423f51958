//! Event and configuration layouts shared by the eBPF programs (`tracer-ebpf`)
//! and userspace (`tracer`).
//!
//! Every record that crosses the ring buffer starts with an [`EventHeader`]
//! whose `kind` is one of [`kind`]'s stable values. All structs are
//! `#[repr(C)]` with explicit padding so that their layout is the same on both
//! sides; the unit tests in `tracer` check sizes and offsets.
#![no_std]

pub mod fexit;
pub mod pair;

pub use fexit::{FEXIT_CTX_SLOTS, FexitArgs, FexitSlots};

/// Stable event kind numbers written into [`EventHeader::kind`].
pub mod kind {
    /// A netlink message read from the memory of a process calling
    /// sendmsg/sendto/sendmmsg (tracepoint path): [`NlMsgEvent`].
    pub const NL_REQUEST: u16 = 1;
    /// A netlink error/ack message read from the buffer a process received:
    /// [`NlAckEvent`].
    pub const NL_ACK: u16 = 2;
    /// A route insert or delete seen in the kernel (fib_table_insert,
    /// fib_table_delete, fib6_add, fib6_del): [`RouteEvent`].
    pub const ROUTE: u16 = 3;
    /// A rule request seen in the kernel (fib_nl_newrule/fib_nl_delrule or
    /// fib_newrule/fib_delrule); the netlink message is copied from kernel
    /// memory: [`NlMsgEvent`].
    pub const RULE: u16 = 4;
    /// fib_table_flush returned: [`FlushEvent`].
    pub const FLUSH: u16 = 5;
    /// A process executed a program (sched:sched_process_exec): [`ExecEvent`].
    pub const EXEC: u16 = 6;
    /// A packet received on or queued to a watched interface
    /// (net:netif_receive_skb, net:net_dev_queue): [`PacketEvent`].
    pub const PACKET: u16 = 7;
    /// A FIB table lookup for a packet received on a watched interface
    /// (fib:fib_table_lookup, fib6:fib6_table_lookup): [`FibLookupEvent`].
    pub const FIB_LOOKUP: u16 = 8;
}

/// Packet direction in [`PacketEvent::dir`].
pub mod dir {
    /// net:netif_receive_skb
    pub const RX: u8 = 1;
    /// net:net_dev_queue
    pub const TX: u8 = 2;
}

/// Bytes of each watched packet copied, from its IP header on: enough for
/// IPv4/IPv6 and ICMP/TCP/UDP headers, and for the --pcap snapshot.
pub const PKT_SNAP: usize = 128;

/// How far apart (ns) a received packet and its looped copy may be. The
/// packet programs pair a transmitted packet only with a reception this
/// recent, and the loop detector uses the same window.
pub const PAIR_WINDOW_NS: u64 = 1_000_000_000;

/// Words (u64) of the watched-ifindex bitmap (`WATCH_IFINDEX`): bit
/// `ifindex % (64 * WATCH_BITMAP_WORDS)` is set for every watched
/// interface. It is a first filter, before the (namespace, ifindex) map.
pub const WATCH_BITMAP_WORDS: u32 = 64;

/// The word and bit of `ifindex` in the watched-ifindex bitmap.
#[inline(always)]
pub const fn watch_bit(ifindex: u32) -> (u32, u32) {
    ((ifindex / 64) % WATCH_BITMAP_WORDS, ifindex % 64)
}

/// The mechanism that produced an event, written into [`EventHeader::source`].
pub mod source {
    pub const TRACEPOINT: u8 = 1;
    pub const KPROBE: u8 = 2;
    pub const FENTRY: u8 = 3;
}

/// Route operation in [`RouteEvent::op`].
pub mod op {
    pub const ADD: u8 = 1;
    pub const DEL: u8 = 2;
}

/// Syscall that carried a netlink request, in [`NlMsgEvent::syscall`].
pub mod syscall {
    pub const SENDMSG: u8 = 1;
    pub const SENDTO: u8 = 2;
    pub const SENDMMSG: u8 = 3;
    pub const RECVMSG: u8 = 4;
    pub const RECVFROM: u8 = 5;
    /// Read from kernel memory in a kprobe/fentry program, no syscall involved.
    pub const KERNEL: u8 = 6;
}

pub const COMM_LEN: usize = 16;
/// Largest part of one netlink buffer copied into an event. Bulk requests
/// (`ip route flush` batches) are longer and are marked truncated (at most
/// NL_DATA_MAX - 1 bytes are copied, a bound every verifier can prove); userspace
/// decodes every complete message inside the copied part.
pub const NL_DATA_MAX: usize = 4096;
/// Largest exec filename copied.
pub const PATH_MAX_COPY: usize = 256;
/// Marker for an offset that could not be resolved on the running kernel.
pub const NO_OFFSET: u32 = u32::MAX;

/// Fixed header of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u16,
    pub source: u8,
    pub _pad0: u8,
    /// Total record length in bytes, header included.
    pub len: u32,
    /// bpf_ktime_get_boot_ns() at the event.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Inode of the calling task's network namespace (0 if unknown).
    pub netns: u32,
    pub _pad1: u32,
    /// cgroup v2 id of the calling task.
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
    pub parent_comm: [u8; COMM_LEN],
}

/// A netlink buffer copied from user memory (requests, acks) or from kernel
/// memory (rule requests on the kprobe/fentry path).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NlMsgEvent {
    pub hdr: EventHeader,
    /// One of [`syscall`].
    pub syscall: u8,
    /// 1 if the buffer was longer than [`NL_DATA_MAX`].
    pub truncated: u8,
    pub _pad0: u16,
    /// File descriptor the request was written to (-1 if unknown).
    pub fd: i32,
    /// Return value of the kernel function (kprobe/fentry rule events), else 0.
    pub ret: i32,
    /// Number of valid bytes in `data`.
    pub data_len: u32,
    pub data: [u8; NL_DATA_MAX],
}

/// A netlink error message (NLMSG_ERROR) a process received: the kernel's
/// answer to one of its requests.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NlAckEvent {
    pub hdr: EventHeader,
    /// 0 for an ack, a negative errno for an error.
    pub error: i32,
    /// Sequence number of the request this answers.
    pub seq: u32,
    /// Type of the request this answers.
    pub msg_type: u16,
    pub _pad0: u16,
    /// Port id the request was sent from (from the answered header).
    pub portid: u32,
}

/// A route insertion or deletion as the kernel's FIB saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteEvent {
    pub hdr: EventHeader,
    /// One of [`op`].
    pub op: u8,
    /// AF_INET or AF_INET6.
    pub family: u8,
    pub dst_len: u8,
    /// RTN_* route type.
    pub rtype: u8,
    pub protocol: u8,
    pub scope: u8,
    /// AF_INET/AF_INET6 of `gw`, 0 for none.
    pub gw_family: u8,
    /// 1 if the change came with a netlink request (nlh != NULL).
    pub has_nlh: u8,
    pub table: u32,
    pub priority: u32,
    pub oif: i32,
    /// Return value of the kernel function (0 or -errno).
    pub ret: i32,
    /// Sequence number and port id of the netlink request, if any.
    pub nl_seq: u32,
    pub nl_portid: u32,
    pub dst: [u8; 16],
    pub gw: [u8; 16],
}

/// fib_table_flush: routes removed without a netlink request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushEvent {
    pub hdr: EventHeader,
    pub table: u32,
    /// Number of routes the flush removed (fib_table_flush's return value).
    pub removed: i32,
    pub flush_all: u8,
    pub _pad0: [u8; 7],
}

/// sched:sched_process_exec.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    pub filename_len: u32,
    pub _pad0: u32,
    pub filename: [u8; PATH_MAX_COPY],
}

/// Key of the watched-interface map: an interface in a network namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WatchKey {
    /// Inode of the interface's network namespace.
    pub netns: u32,
    pub ifindex: u32,
}

/// Slots of the tc programs' interface table (`TC_IFACES`): an interface
/// watched with the tc programs sits in slot `ifindex % TC_SLOTS`.
pub const TC_SLOTS: u32 = 4096;

/// An interface the tc programs are attached to, in slot
/// `ifindex % TC_SLOTS` of `TC_IFACES` (ifindex 0: an empty slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcIface {
    pub netns: u32,
    pub ifindex: u32,
    /// Bytes of link-layer header before the IP header in the packets the
    /// programs see (14 on Ethernet, 0 on TUN and other L3 devices).
    pub l2_len: u32,
    pub _pad: u32,
}

/// A packet on a watched interface. The header's `netns` is the device's
/// namespace; the task fields are left zero (packets are mostly handled in
/// softirq context, where the current task says nothing).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketEvent {
    pub hdr: EventHeader,
    pub ifindex: u32,
    /// skb->len when the tracepoint fired.
    pub skb_len: u32,
    pub mark: u32,
    /// One of [`dir`].
    pub dir: u8,
    pub _pad0: u8,
    /// skb->protocol, host byte order (0x0800 IPv4, 0x86dd IPv6).
    pub protocol: u16,
    /// Valid bytes in `data` (0 if the read failed).
    pub cap_len: u32,
    pub _pad1: u32,
    /// The packet from its IP header on.
    pub data: [u8; PKT_SNAP],
}

/// One FIB table lookup (fib:fib_table_lookup or fib6:fib6_table_lookup) for
/// a packet that arrived on a watched interface. The header's `netns` is
/// that interface's namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibLookupEvent {
    pub hdr: EventHeader,
    pub table: u32,
    /// 0 on a match, else a negative errno (-EAGAIN: no match / throw).
    pub err: i32,
    pub oif: i32,
    pub iif: i32,
    /// AF_INET or AF_INET6.
    pub family: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub _pad0: u16,
    /// Addresses in network order (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Device of the chosen next hop, NUL-padded.
    pub dev: [u8; 16],
}

/// Offsets for the packet-path programs (separate from [`Config`] so the
/// route and rule programs do not carry them), resolved by userspace from
/// BTF and tracefs. [`NO_OFFSET`] marks what the kernel lacks.
///
/// It is a read-only global of the eBPF object (`PKT_OFFSETS`, in
/// `.rodata`), written by userspace before the object is loaded. The
/// verifier therefore sees every offset as a constant, which lets the
/// BTF-enabled tracepoint programs read `sk_buff`, `net_device` and `net`
/// members with plain loads instead of helper calls.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PacketConfig {
    // struct sk_buff.
    pub skb_dev: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_len: u32,
    pub skb_network_header: u32,
    pub skb_protocol: u32,
    pub skb_mark: u32,
    // struct net_device and struct net.
    pub dev_ifindex: u32,
    /// net_device.nd_net.net (possible_net_t).
    pub dev_net: u32,
    pub net_inum: u32,
    // Tracepoint fields: net:netif_receive_skb and net:net_dev_queue.
    pub tp_rx_skb: u32,
    pub tp_tx_skb: u32,
    // fib:fib_table_lookup.
    pub tp4_table: u32,
    pub tp4_err: u32,
    pub tp4_oif: u32,
    pub tp4_iif: u32,
    pub tp4_proto: u32,
    pub tp4_src: u32,
    pub tp4_dst: u32,
    pub tp4_sport: u32,
    pub tp4_dport: u32,
    pub tp4_dev: u32,
    // fib6:fib6_table_lookup.
    pub tp6_table: u32,
    pub tp6_err: u32,
    pub tp6_oif: u32,
    pub tp6_iif: u32,
    pub tp6_proto: u32,
    pub tp6_src: u32,
    pub tp6_dst: u32,
    pub tp6_sport: u32,
    pub tp6_dport: u32,
    pub tp6_dev: u32,
}

impl PacketConfig {
    /// A configuration with every offset unresolved.
    pub const fn unresolved() -> Self {
        Self {
            skb_dev: NO_OFFSET,
            skb_head: NO_OFFSET,
            skb_data: NO_OFFSET,
            skb_len: NO_OFFSET,
            skb_network_header: NO_OFFSET,
            skb_protocol: NO_OFFSET,
            skb_mark: NO_OFFSET,
            dev_ifindex: NO_OFFSET,
            dev_net: NO_OFFSET,
            net_inum: NO_OFFSET,
            tp_rx_skb: NO_OFFSET,
            tp_tx_skb: NO_OFFSET,
            tp4_table: NO_OFFSET,
            tp4_err: NO_OFFSET,
            tp4_oif: NO_OFFSET,
            tp4_iif: NO_OFFSET,
            tp4_proto: NO_OFFSET,
            tp4_src: NO_OFFSET,
            tp4_dst: NO_OFFSET,
            tp4_sport: NO_OFFSET,
            tp4_dport: NO_OFFSET,
            tp4_dev: NO_OFFSET,
            tp6_table: NO_OFFSET,
            tp6_err: NO_OFFSET,
            tp6_oif: NO_OFFSET,
            tp6_iif: NO_OFFSET,
            tp6_proto: NO_OFFSET,
            tp6_src: NO_OFFSET,
            tp6_dst: NO_OFFSET,
            tp6_sport: NO_OFFSET,
            tp6_dport: NO_OFFSET,
            tp6_dev: NO_OFFSET,
        }
    }
}

/// Kernel struct member offsets and tracepoint field offsets, resolved by
/// userspace from the running kernel (BTF, tracefs) and handed to the eBPF
/// programs through the `CONFIG` array map. [`NO_OFFSET`] marks a member the
/// running kernel does not have; the programs then leave that field empty.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Config {
    // task_struct and friends (process identity).
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_nsproxy: u32,
    pub nsproxy_net_ns: u32,
    /// Offset of `ns.inum` inside `struct net`.
    pub net_inum: u32,

    // Userspace ABI structs (struct user_msghdr, struct iovec, struct mmsghdr).
    pub msghdr_name: u32,
    pub msghdr_iov: u32,
    pub msghdr_iovlen: u32,
    pub iovec_base: u32,
    pub iovec_len: u32,
    pub sockaddr_family: u32,
    /// sizeof(struct mmsghdr), the stride of sendmmsg's vector.
    pub mmsghdr_size: u32,
    /// sizeof(struct iovec), the stride of a msghdr's iovec array.
    pub iovec_size: u32,

    // From a file descriptor to its socket (task->files->fdt->fd[n]->private_data).
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    /// sock.__sk_common.skc_family.
    pub sk_family: u32,
    /// sock.sk_protocol (a u16 on every kernel with BTF).
    pub sk_protocol: u32,

    // syscalls tracepoint fields (from tracefs format files).
    pub tp_sendmsg_msg: u32,
    pub tp_sendmsg_fd: u32,
    pub tp_sendto_buff: u32,
    pub tp_sendto_len: u32,
    pub tp_sendto_addr: u32,
    pub tp_sendto_fd: u32,
    pub tp_sendmmsg_mmsg: u32,
    pub tp_sendmmsg_vlen: u32,
    pub tp_sendmmsg_fd: u32,
    pub tp_recvmsg_msg: u32,
    pub tp_recvfrom_ubuf: u32,
    pub tp_exit_ret: u32,
    pub tp_exec_filename: u32,

    // struct fib_config (IPv4 route requests).
    pub cfg_dst_len: u32,
    pub cfg_protocol: u32,
    pub cfg_scope: u32,
    pub cfg_type: u32,
    pub cfg_table: u32,
    pub cfg_dst: u32,
    pub cfg_gw_family: u32,
    pub cfg_gw4: u32,
    pub cfg_gw6: u32,
    pub cfg_oif: u32,
    pub cfg_priority: u32,
    /// Offset of `fc_nlinfo` inside fib_config.
    pub cfg_nlinfo: u32,

    // struct nl_info.
    pub nlinfo_nlh: u32,
    pub nlinfo_portid: u32,
    // struct nlmsghdr is uapi: seq is read from its BTF offset too.
    pub nlh_seq: u32,
    pub nlh_len: u32,
    pub nlh_type: u32,
    pub nlh_pid: u32,
    /// struct nlmsgerr: the error code and the echoed request header.
    pub nlmsgerr_error: u32,
    pub nlmsgerr_msg: u32,

    // struct fib_table.
    pub fib_table_id: u32,

    // struct fib6_info and friends (IPv6 routes).
    pub f6_table: u32,
    pub f6_table_id: u32,
    pub f6_dst_addr: u32,
    pub f6_dst_plen: u32,
    pub f6_metric: u32,
    pub f6_protocol: u32,
    pub f6_type: u32,
    /// Offset of the first `struct fib6_nh` (flexible array) in fib6_info.
    pub f6_nh: u32,
    /// Offset of `struct nexthop *nh` in fib6_info (non-NULL: nexthop object).
    pub f6_nh_obj: u32,
    /// Offsets inside struct fib6_nh (through its fib_nh_common).
    pub nhc_dev: u32,
    pub nhc_gw_family: u32,
    pub nhc_gw: u32,
    pub dev_ifindex: u32,

    /// Argument index (0-based) of `struct nlmsghdr *nlh` in the attached
    /// rule-deletion and rule-addition functions. These argument indices
    /// serve the kprobe programs; the fexit programs take theirs from the
    /// read-only global [`FexitArgs`].
    pub rule_del_nlh_arg: u32,
    pub rule_add_nlh_arg: u32,
    /// Argument indices of fib_table_insert/fib_table_delete(net, tb, cfg, extack).
    pub arg_f4_tb: u32,
    pub arg_f4_cfg: u32,
    /// Argument indices of fib6_add(root, rt, info, extack) and fib6_del(rt, info).
    pub arg_f6add_rt: u32,
    pub arg_f6add_info: u32,
    pub arg_f6del_rt: u32,
    pub arg_f6del_info: u32,
    /// Argument indices of fib_table_flush(net, tb, flush_all).
    pub arg_flush_tb: u32,
    pub arg_flush_all: u32,
    /// Wake userspace only every this many records (1 = every record).
    pub wakeup_every: u32,
    /// Nonzero: copy netlink requests only from tasks whose network
    /// namespace is in NL_NETNS (`--netns`), so a flood elsewhere cannot
    /// fill the ring buffer.
    pub netns_filter: u32,
    /// Offsets inside `struct pt_regs` of the registers that carry a kernel
    /// function's arguments 0..6 (this architecture's calling convention),
    /// from BTF: a kprobe reads argument `n` at `regs + kprobe_regs[n]`.
    pub kprobe_regs: [u32; KPROBE_ARG_REGS],
}

/// How many function arguments a kprobe can read from registers.
pub const KPROBE_ARG_REGS: usize = 6;

impl Config {
    /// A configuration with every offset unresolved.
    pub const fn unresolved() -> Self {
        Self {
            task_real_parent: NO_OFFSET,
            task_tgid: NO_OFFSET,
            task_comm: NO_OFFSET,
            task_nsproxy: NO_OFFSET,
            nsproxy_net_ns: NO_OFFSET,
            net_inum: NO_OFFSET,
            msghdr_name: NO_OFFSET,
            msghdr_iov: NO_OFFSET,
            msghdr_iovlen: NO_OFFSET,
            iovec_base: NO_OFFSET,
            iovec_len: NO_OFFSET,
            sockaddr_family: NO_OFFSET,
            mmsghdr_size: NO_OFFSET,
            iovec_size: NO_OFFSET,
            task_files: NO_OFFSET,
            files_fdt: NO_OFFSET,
            fdt_fd: NO_OFFSET,
            fdt_max_fds: NO_OFFSET,
            file_private_data: NO_OFFSET,
            socket_sk: NO_OFFSET,
            sk_family: NO_OFFSET,
            sk_protocol: NO_OFFSET,
            tp_sendmsg_msg: NO_OFFSET,
            tp_sendmsg_fd: NO_OFFSET,
            tp_sendto_buff: NO_OFFSET,
            tp_sendto_len: NO_OFFSET,
            tp_sendto_addr: NO_OFFSET,
            tp_sendto_fd: NO_OFFSET,
            tp_sendmmsg_mmsg: NO_OFFSET,
            tp_sendmmsg_vlen: NO_OFFSET,
            tp_sendmmsg_fd: NO_OFFSET,
            tp_recvmsg_msg: NO_OFFSET,
            tp_recvfrom_ubuf: NO_OFFSET,
            tp_exit_ret: NO_OFFSET,
            tp_exec_filename: NO_OFFSET,
            cfg_dst_len: NO_OFFSET,
            cfg_protocol: NO_OFFSET,
            cfg_scope: NO_OFFSET,
            cfg_type: NO_OFFSET,
            cfg_table: NO_OFFSET,
            cfg_dst: NO_OFFSET,
            cfg_gw_family: NO_OFFSET,
            cfg_gw4: NO_OFFSET,
            cfg_gw6: NO_OFFSET,
            cfg_oif: NO_OFFSET,
            cfg_priority: NO_OFFSET,
            cfg_nlinfo: NO_OFFSET,
            nlinfo_nlh: NO_OFFSET,
            nlinfo_portid: NO_OFFSET,
            nlh_seq: NO_OFFSET,
            nlh_len: NO_OFFSET,
            nlh_type: NO_OFFSET,
            nlh_pid: NO_OFFSET,
            nlmsgerr_error: NO_OFFSET,
            nlmsgerr_msg: NO_OFFSET,
            fib_table_id: NO_OFFSET,
            f6_table: NO_OFFSET,
            f6_table_id: NO_OFFSET,
            f6_dst_addr: NO_OFFSET,
            f6_dst_plen: NO_OFFSET,
            f6_metric: NO_OFFSET,
            f6_protocol: NO_OFFSET,
            f6_type: NO_OFFSET,
            f6_nh: NO_OFFSET,
            f6_nh_obj: NO_OFFSET,
            nhc_dev: NO_OFFSET,
            nhc_gw_family: NO_OFFSET,
            nhc_gw: NO_OFFSET,
            dev_ifindex: NO_OFFSET,
            rule_del_nlh_arg: NO_OFFSET,
            rule_add_nlh_arg: NO_OFFSET,
            arg_f4_tb: NO_OFFSET,
            arg_f4_cfg: NO_OFFSET,
            arg_f6add_rt: NO_OFFSET,
            arg_f6add_info: NO_OFFSET,
            arg_f6del_rt: NO_OFFSET,
            arg_f6del_info: NO_OFFSET,
            arg_flush_tb: NO_OFFSET,
            arg_flush_all: NO_OFFSET,
            wakeup_every: 1,
            netns_filter: 0,
            kprobe_regs: [NO_OFFSET; KPROBE_ARG_REGS],
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `#[repr(C)]` structs of integers with explicit padding.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PacketConfig {}
    unsafe impl aya::Pod for super::FexitArgs {}
    unsafe impl aya::Pod for super::WatchKey {}
    unsafe impl aya::Pod for super::TcIface {}
}
