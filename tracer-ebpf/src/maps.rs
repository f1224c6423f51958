//! Maps shared by the programs.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{Config, RouteEvent};

/// Every record for userspace. Its size is set by userspace at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Offsets resolved by userspace; index 0.
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Threads that sent an rtnetlink request recently: only their receives are
/// inspected for the kernel's ack.
#[map]
pub static NL_SENDERS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(4096, 0);

/// With `Config::netns_filter`: the network namespaces (inode numbers)
/// whose netlink requests are copied.
#[map]
pub static NL_NETNS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Receive buffers of threads inside recvmsg/recvfrom, by thread id: the
/// pointer (msghdr for recvmsg, buffer for recvfrom) and whether it is a msghdr.
#[map]
pub static RECV_PENDING: HashMap<u32, [u64; 2]> = HashMap::with_max_entries(4096, 0);

/// kprobe path: a route captured at function entry, completed at return.
#[map]
pub static ROUTE_PENDING: HashMap<u32, RouteEvent> = HashMap::with_max_entries(4096, 0);

/// kprobe path: pointer arguments saved at entry (nlh for rules, tb and
/// flush_all for fib_table_flush), by thread id.
#[map]
pub static PTR_PENDING: HashMap<u32, [u64; 2]> = HashMap::with_max_entries(4096, 0);

/// Per-CPU counters userspace sums: index 0 = records dropped because the
/// ring buffer was full.
#[map]
pub static DROPPED: PerCpuArray<u64> = PerCpuArray::with_max_entries(4, 0);

pub const DROP_RINGBUF: u32 = 0;

/// The configuration, or None before userspace wrote it.
#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(0)
}

/// Count a record lost to a full ring buffer.
#[inline(always)]
pub fn count_drop() {
    if let Some(p) = DROPPED.get_ptr_mut(DROP_RINGBUF) {
        // SAFETY: a per-CPU slot; programs do not migrate while running.
        unsafe { *p += 1 };
    }
}
