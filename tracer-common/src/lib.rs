//! Event and configuration layouts shared by the eBPF programs (`tracer-ebpf`)
//! and userspace (`tracer`).
//!
//! Every record that crosses the ring buffer starts with an [`EventHeader`]
//! whose `kind` is one of [`kind`]'s stable values. All structs are
//! `#[repr(C)]` with explicit padding so that their layout is the same on both
//! sides; the unit tests in `tracer` check sizes and offsets.
#![no_std]

pub mod config;
pub mod fexit;
pub mod pair;
pub mod record;

pub use config::{Config, KPROBE_ARG_REGS, PacketConfig, Resolve};
pub use fexit::{FEXIT_CTX_SLOTS, FexitArgs, FexitSlots};
pub use record::Record;

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
    /// The request message an rtnetlink handler received, seen in the
    /// kernel: rules (fib_nl_newrule/fib_nl_delrule or
    /// fib_newrule/fib_delrule) and nexthop objects
    /// (rtm_new_nexthop/rtm_del_nexthop). The netlink message is copied from
    /// kernel memory with the handler's return value: [`RuleMsgEvent`].
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
    /// A process called umount2 (syscalls:sys_enter_umount): the path it
    /// named, for the namespace whose bind mount it removed:
    /// [`UmountEvent`].
    pub const UMOUNT: u16 = 9;
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

/// How far apart (ns) a received packet and its looped copy may be, for
/// the loop detector. (The packet programs pair a transmission only with
/// one of the last receptions on its CPU, see tracer-ebpf's
/// `packet/pair.rs`.)
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
/// Address family numbers (`AF_INET`, `AF_INET6` in the kernel's
/// socket.h): the values of every `family` field.
pub mod af {
    pub const INET: u8 = 2;
    pub const INET6: u8 = 10;
}

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
/// Largest exec filename or unmounted path copied.
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
/// memory (rule and nexthop requests on the kprobe/fentry path).
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
    /// Return value of the kernel function (kprobe/fentry handler records), else 0.
    pub ret: i32,
    /// Number of valid bytes in `data`.
    pub data_len: u32,
    pub data: [u8; NL_DATA_MAX],
}

/// A request message as an rtnetlink handler (kprobe/fentry) received it,
/// with its return value: rules and nexthop objects. The same layout as
/// [`NlMsgEvent`], a record kind of its own; userspace decodes whatever
/// rtnetlink message it holds.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct RuleMsgEvent(pub NlMsgEvent);

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

/// syscalls:sys_enter_umount (umount2 on x86-64 and arm64): the path a
/// process asked to unmount, as it passed it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UmountEvent {
    pub hdr: EventHeader,
    /// Bytes of `path` before its NUL (0 if the read failed). A path of
    /// `PATH_MAX_COPY - 1` bytes may have been cut.
    pub path_len: u32,
    pub _pad0: u32,
    pub path: [u8; PATH_MAX_COPY],
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

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `#[repr(C)]` structs of integers with explicit padding.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PacketConfig {}
    unsafe impl aya::Pod for super::FexitArgs {}
    unsafe impl aya::Pod for super::WatchKey {}
    unsafe impl aya::Pod for super::TcIface {}
}
