//! The offsets handed to the eBPF programs, each declared once: its field,
//! its value while unresolved, and how userspace resolves it from the
//! running kernel (a [`Resolve`] method and its arguments). The
//! [`offset_table!`] macro turns each table into the `#[repr(C)]` struct,
//! its `unresolved()` constructor and its `resolve_with()`; adding an offset
//! is one line here and its use in a program.
use crate::NO_OFFSET;

/// How many function arguments a kprobe can read from registers.
pub const KPROBE_ARG_REGS: usize = 6;

/// How userspace finds each kind of offset in the running kernel (BTF,
/// tracefs). The implementation lives in `tracer/src/kernel/offsets.rs`;
/// every method returns [`NO_OFFSET`] (and records why) when the kernel
/// does not have what is asked for.
pub trait Resolve {
    /// Byte offset of a member (a dotted path through nested and anonymous
    /// members) of a struct.
    fn member(&mut self, struct_name: &str, path: &str) -> u32;
    /// The size of a struct.
    fn size(&mut self, struct_name: &str) -> u32;
    /// Offset of a field in a tracepoint's record (tracefs format file).
    fn tp_field(&mut self, category: &str, event: &str, field: &str) -> u32;
    /// Offset of the namespace inode number inside `struct net`.
    fn net_inum(&mut self) -> u32;
    /// Index of the `nlh` parameter of the first of `functions` BTF has.
    fn nlh_arg(&mut self, functions: [&str; 2]) -> u32;
    /// Index of `param`, which must be the same in every one of `functions`.
    fn shared_arg(&mut self, functions: &[&str], param: &str) -> u32;
    /// Offsets inside `struct pt_regs` of the argument registers.
    fn kprobe_regs(&mut self) -> [u32; KPROBE_ARG_REGS];
    /// A value userspace sets at run time, not from the kernel.
    fn later(&mut self, value: u32) -> u32 {
        value
    }
}

/// Declares an offset table: `field: type = unresolved => method(args),`
/// for each field, in the struct's order.
#[macro_export]
macro_rules! offset_table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident resolved by $resolve:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $unresolved:expr => $method:ident ( $($arg:expr),* $(,)? ),
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// A configuration with every offset unresolved.
            pub const fn unresolved() -> Self {
                Self { $( $field: $unresolved, )* }
            }

            /// Every field from `r`, in the table's order.
            pub fn resolve_with<R: $resolve + ?Sized>(r: &mut R) -> Self {
                Self { $( $field: r.$method($($arg),*), )* }
            }
        }
    };
}

offset_table! {
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
    pub struct PacketConfig resolved by Resolve {
        // struct sk_buff.
        skb_dev: u32 = NO_OFFSET => member("sk_buff", "dev"),
        skb_head: u32 = NO_OFFSET => member("sk_buff", "head"),
        skb_data: u32 = NO_OFFSET => member("sk_buff", "data"),
        skb_len: u32 = NO_OFFSET => member("sk_buff", "len"),
        skb_network_header: u32 = NO_OFFSET => member("sk_buff", "network_header"),
        skb_protocol: u32 = NO_OFFSET => member("sk_buff", "protocol"),
        skb_mark: u32 = NO_OFFSET => member("sk_buff", "mark"),
        /// The interface the packet was received on (0: made here).
        skb_iif: u32 = NO_OFFSET => member("sk_buff", "skb_iif"),
        // struct net_device and struct net.
        dev_ifindex: u32 = NO_OFFSET => member("net_device", "ifindex"),
        /// net_device.nd_net.net (possible_net_t).
        dev_net: u32 = NO_OFFSET => member("net_device", "nd_net.net"),
        net_inum: u32 = NO_OFFSET => net_inum(),
        // Tracepoint fields: net:netif_receive_skb and net:net_dev_queue.
        tp_rx_skb: u32 = NO_OFFSET => tp_field("net", "netif_receive_skb", "skbaddr"),
        tp_tx_skb: u32 = NO_OFFSET => tp_field("net", "net_dev_queue", "skbaddr"),
        // fib:fib_table_lookup.
        tp4_table: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "tb_id"),
        tp4_err: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "err"),
        tp4_oif: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "oif"),
        tp4_iif: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "iif"),
        tp4_proto: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "proto"),
        tp4_src: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "src"),
        tp4_dst: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "dst"),
        tp4_sport: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "sport"),
        tp4_dport: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "dport"),
        tp4_dev: u32 = NO_OFFSET => tp_field("fib", "fib_table_lookup", "name"),
        // fib6:fib6_table_lookup.
        tp6_table: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "tb_id"),
        tp6_err: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "err"),
        tp6_oif: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "oif"),
        tp6_iif: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "iif"),
        tp6_proto: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "proto"),
        tp6_src: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "src"),
        tp6_dst: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "dst"),
        tp6_sport: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "sport"),
        tp6_dport: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "dport"),
        tp6_dev: u32 = NO_OFFSET => tp_field("fib6", "fib6_table_lookup", "name"),
    }
}

offset_table! {
    /// Kernel struct member offsets and tracepoint field offsets, resolved by
    /// userspace from the running kernel (BTF, tracefs) and handed to the eBPF
    /// programs through the `CONFIG` array map. [`NO_OFFSET`] marks a member the
    /// running kernel does not have; the programs then leave that field empty.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct Config resolved by Resolve {
        // task_struct and friends (process identity).
        task_real_parent: u32 = NO_OFFSET => member("task_struct", "real_parent"),
        task_tgid: u32 = NO_OFFSET => member("task_struct", "tgid"),
        task_comm: u32 = NO_OFFSET => member("task_struct", "comm"),
        task_nsproxy: u32 = NO_OFFSET => member("task_struct", "nsproxy"),
        nsproxy_net_ns: u32 = NO_OFFSET => member("nsproxy", "net_ns"),
        /// Offset of `ns.inum` inside `struct net`.
        net_inum: u32 = NO_OFFSET => net_inum(),

        // Userspace ABI structs (struct user_msghdr, struct iovec, struct mmsghdr).
        msghdr_name: u32 = NO_OFFSET => member("user_msghdr", "msg_name"),
        msghdr_iov: u32 = NO_OFFSET => member("user_msghdr", "msg_iov"),
        msghdr_iovlen: u32 = NO_OFFSET => member("user_msghdr", "msg_iovlen"),
        iovec_base: u32 = NO_OFFSET => member("iovec", "iov_base"),
        iovec_len: u32 = NO_OFFSET => member("iovec", "iov_len"),
        sockaddr_family: u32 = NO_OFFSET => member("sockaddr_nl", "nl_family"),
        /// sizeof(struct mmsghdr), the stride of sendmmsg's vector.
        mmsghdr_size: u32 = NO_OFFSET => size("mmsghdr"),
        /// sizeof(struct iovec), the stride of a msghdr's iovec array.
        iovec_size: u32 = NO_OFFSET => size("iovec"),

        // From a file descriptor to its socket (task->files->fdt->fd[n]->private_data).
        task_files: u32 = NO_OFFSET => member("task_struct", "files"),
        files_fdt: u32 = NO_OFFSET => member("files_struct", "fdt"),
        fdt_fd: u32 = NO_OFFSET => member("fdtable", "fd"),
        fdt_max_fds: u32 = NO_OFFSET => member("fdtable", "max_fds"),
        file_private_data: u32 = NO_OFFSET => member("file", "private_data"),
        socket_sk: u32 = NO_OFFSET => member("socket", "sk"),
        /// sock.__sk_common.skc_family.
        sk_family: u32 = NO_OFFSET => member("sock", "__sk_common.skc_family"),
        /// sock.sk_protocol (a u16 on every kernel with BTF).
        sk_protocol: u32 = NO_OFFSET => member("sock", "sk_protocol"),

        // syscalls tracepoint fields (from tracefs format files).
        tp_sendmsg_msg: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendmsg", "msg"),
        tp_sendmsg_fd: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendmsg", "fd"),
        tp_sendto_buff: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendto", "buff"),
        tp_sendto_len: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendto", "len"),
        tp_sendto_addr: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendto", "addr"),
        tp_sendto_fd: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendto", "fd"),
        tp_sendmmsg_mmsg: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendmmsg", "mmsg"),
        tp_sendmmsg_vlen: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendmmsg", "vlen"),
        tp_sendmmsg_fd: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_sendmmsg", "fd"),
        tp_recvmsg_msg: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_recvmsg", "msg"),
        tp_recvfrom_ubuf: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_recvfrom", "ubuf"),
        tp_exit_ret: u32 = NO_OFFSET => tp_field("syscalls", "sys_exit_recvmsg", "ret"),
        tp_exec_filename: u32 = NO_OFFSET => tp_field("sched", "sched_process_exec", "filename"),
        /// The path argument of umount2 (its syscall tracepoint is named
        /// after the old umount on every architecture).
        tp_umount_name: u32 = NO_OFFSET => tp_field("syscalls", "sys_enter_umount", "name"),

        // struct fib_config (IPv4 route requests).
        cfg_dst_len: u32 = NO_OFFSET => member("fib_config", "fc_dst_len"),
        cfg_protocol: u32 = NO_OFFSET => member("fib_config", "fc_protocol"),
        cfg_scope: u32 = NO_OFFSET => member("fib_config", "fc_scope"),
        cfg_type: u32 = NO_OFFSET => member("fib_config", "fc_type"),
        cfg_table: u32 = NO_OFFSET => member("fib_config", "fc_table"),
        cfg_dst: u32 = NO_OFFSET => member("fib_config", "fc_dst"),
        cfg_gw_family: u32 = NO_OFFSET => member("fib_config", "fc_gw_family"),
        cfg_gw4: u32 = NO_OFFSET => member("fib_config", "fc_gw4"),
        cfg_gw6: u32 = NO_OFFSET => member("fib_config", "fc_gw6"),
        cfg_oif: u32 = NO_OFFSET => member("fib_config", "fc_oif"),
        cfg_priority: u32 = NO_OFFSET => member("fib_config", "fc_priority"),
        /// Offset of `fc_nlinfo` inside fib_config.
        cfg_nlinfo: u32 = NO_OFFSET => member("fib_config", "fc_nlinfo"),

        // struct nl_info.
        nlinfo_nlh: u32 = NO_OFFSET => member("nl_info", "nlh"),
        nlinfo_portid: u32 = NO_OFFSET => member("nl_info", "portid"),
        // struct nlmsghdr is uapi: seq is read from its BTF offset too.
        nlh_seq: u32 = NO_OFFSET => member("nlmsghdr", "nlmsg_seq"),
        nlh_len: u32 = NO_OFFSET => member("nlmsghdr", "nlmsg_len"),
        nlh_type: u32 = NO_OFFSET => member("nlmsghdr", "nlmsg_type"),
        nlh_pid: u32 = NO_OFFSET => member("nlmsghdr", "nlmsg_pid"),
        /// struct nlmsgerr: the error code and the echoed request header.
        nlmsgerr_error: u32 = NO_OFFSET => member("nlmsgerr", "error"),
        nlmsgerr_msg: u32 = NO_OFFSET => member("nlmsgerr", "msg"),

        // struct fib_table.
        fib_table_id: u32 = NO_OFFSET => member("fib_table", "tb_id"),

        // struct fib6_info and friends (IPv6 routes).
        f6_table: u32 = NO_OFFSET => member("fib6_info", "fib6_table"),
        f6_table_id: u32 = NO_OFFSET => member("fib6_table", "tb6_id"),
        f6_dst_addr: u32 = NO_OFFSET => member("fib6_info", "fib6_dst.addr"),
        f6_dst_plen: u32 = NO_OFFSET => member("fib6_info", "fib6_dst.plen"),
        f6_metric: u32 = NO_OFFSET => member("fib6_info", "fib6_metric"),
        f6_protocol: u32 = NO_OFFSET => member("fib6_info", "fib6_protocol"),
        f6_type: u32 = NO_OFFSET => member("fib6_info", "fib6_type"),
        /// Offset of the first `struct fib6_nh` (flexible array) in fib6_info.
        f6_nh: u32 = NO_OFFSET => member("fib6_info", "fib6_nh"),
        /// Offset of `struct nexthop *nh` in fib6_info (non-NULL: nexthop object).
        f6_nh_obj: u32 = NO_OFFSET => member("fib6_info", "nh"),
        /// Offsets inside struct fib6_nh (through its fib_nh_common).
        nhc_dev: u32 = NO_OFFSET => member("fib6_nh", "nh_common.nhc_dev"),
        nhc_gw_family: u32 = NO_OFFSET => member("fib6_nh", "nh_common.nhc_gw_family"),
        nhc_gw: u32 = NO_OFFSET => member("fib6_nh", "nh_common.nhc_gw"),
        dev_ifindex: u32 = NO_OFFSET => member("net_device", "ifindex"),

        /// Argument index (0-based) of `struct nlmsghdr *nlh` in the attached
        /// rule-deletion and rule-addition functions. These argument indices
        /// serve the kprobe programs; the fexit programs take theirs from the
        /// read-only global [`FexitArgs`].
        rule_del_nlh_arg: u32 = NO_OFFSET => nlh_arg(["fib_delrule", "fib_nl_delrule"]),
        rule_add_nlh_arg: u32 = NO_OFFSET => nlh_arg(["fib_newrule", "fib_nl_newrule"]),
        /// Argument index of `nlh` in rtm_del_nexthop/rtm_new_nexthop (the
        /// nexthop handlers, Linux 5.3+), for the kprobe programs.
        nexthop_del_nlh_arg: u32 = NO_OFFSET => shared_arg(&["rtm_del_nexthop"], "nlh"),
        nexthop_add_nlh_arg: u32 = NO_OFFSET => shared_arg(&["rtm_new_nexthop"], "nlh"),
        /// Argument indices of fib_table_insert/fib_table_delete(net, tb, cfg, extack).
        arg_f4_tb: u32 = NO_OFFSET => shared_arg(&["fib_table_insert", "fib_table_delete"], "tb"),
        arg_f4_cfg: u32 = NO_OFFSET => shared_arg(&["fib_table_insert", "fib_table_delete"], "cfg"),
        /// Argument indices of fib6_add(root, rt, info, extack) and fib6_del(rt, info).
        arg_f6add_rt: u32 = NO_OFFSET => shared_arg(&["fib6_add"], "rt"),
        arg_f6add_info: u32 = NO_OFFSET => shared_arg(&["fib6_add"], "info"),
        arg_f6del_rt: u32 = NO_OFFSET => shared_arg(&["fib6_del"], "rt"),
        arg_f6del_info: u32 = NO_OFFSET => shared_arg(&["fib6_del"], "info"),
        /// Argument indices of fib_table_flush(net, tb, flush_all).
        arg_flush_tb: u32 = NO_OFFSET => shared_arg(&["fib_table_flush"], "tb"),
        arg_flush_all: u32 = NO_OFFSET => shared_arg(&["fib_table_flush"], "flush_all"),
        /// Wake userspace only every this many records (1 = every record).
        wakeup_every: u32 = 1 => later(1),
        /// Nonzero: copy netlink requests only from tasks whose network
        /// namespace is in NL_NETNS (`--netns`), so a flood elsewhere cannot
        /// fill the ring buffer.
        netns_filter: u32 = 0 => later(0),
        /// Offsets inside `struct pt_regs` of the registers that carry a kernel
        /// function's arguments 0..6 (this architecture's calling convention),
        /// from BTF: a kprobe reads argument `n` at `regs + kprobe_regs[n]`.
        kprobe_regs: [u32; KPROBE_ARG_REGS] = [NO_OFFSET; KPROBE_ARG_REGS] => kprobe_regs(),
    }
}
