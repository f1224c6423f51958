//! The packet programs on the watched interfaces themselves: userspace
//! attaches `pkt_rx_tc` to the ingress and `pkt_tx_tc` to the egress of
//! each one (tcx links), so packets on other interfaces never run a
//! program. Ingress runs after netif_receive_skb and before routing;
//! egress in dev_queue_xmit, where net_dev_queue fires. Both return
//! TC_ACT_UNSPEC: the packet goes on as if they were not there.
//!
//! Every packet here is on a watched interface, so this path is tuned for
//! them: the interface is found in an array slot (no hash lookup), and the
//! packet's first bytes come in one helper call.
use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::bpf_skb_load_bytes,
    macros::{classifier, map},
    maps::Array,
    programs::TcContext,
};
use tracer_common::{TC_SLOTS, TcIface, WatchKey};

use super::{Source, rx, tx};

/// No verdict: the next program, or the kernel's normal path.
const TC_ACT_UNSPEC: i32 = -1;

/// The interfaces the tc programs are attached to, in slot
/// `ifindex % TC_SLOTS` (userspace puts an interface whose slot is taken
/// on the tracepoints instead).
#[map]
static TC_IFACES: Array<TcIface> = Array::with_max_entries(TC_SLOTS, 0);

struct TcPkt<'a> {
    ctx: &'a TcContext,
    iface: TcIface,
}

impl<'a> TcPkt<'a> {
    /// The packet, if its interface is in [`TC_IFACES`].
    #[inline(always)]
    fn new(ctx: &'a TcContext) -> Option<Self> {
        // SAFETY: the context is the program's __sk_buff.
        let ifindex = unsafe { (*ctx.skb.skb).ifindex };
        let iface = *TC_IFACES.get(ifindex % TC_SLOTS)?;
        (iface.ifindex == ifindex && ifindex != 0).then_some(TcPkt { ctx, iface })
    }

    #[inline(always)]
    fn skb(&self) -> *mut __sk_buff {
        self.ctx.skb.skb
    }
}

impl Source for TcPkt<'_> {
    #[inline(always)]
    fn watched(&self) -> Option<WatchKey> {
        Some(WatchKey {
            netns: self.iface.netns,
            ifindex: self.iface.ifindex,
        })
    }

    #[inline(always)]
    fn protocol(&self) -> u16 {
        // SAFETY: as in `new`.
        u16::from_be(unsafe { (*self.skb()).protocol } as u16)
    }

    #[inline(always)]
    fn skb_len(&self) -> u32 {
        self.ctx.len()
    }

    #[inline(always)]
    fn mark(&self) -> u32 {
        // SAFETY: as in `new`.
        unsafe { (*self.skb()).mark }
    }

    #[inline(always)]
    fn ingress_ifindex(&self, _key: &WatchKey) -> u32 {
        // SAFETY: as in `new`.
        unsafe { (*self.skb()).ingress_ifindex }
    }

    /// Whether the IP protocol (IPv6: next header) byte says ICMP (1) or
    /// ICMPv6 (58), read directly from the packet's linear data. When the
    /// headers are not there: a packet made on this host (ingress ifindex
    /// 0) is not an ICMP message the kernel made (those are built linear;
    /// these are packet sockets' frames and the like), and a forwarded one
    /// is read with a helper.
    #[inline(always)]
    fn maybe_icmp(&self, v6: bool) -> bool {
        let l2 = self.iface.l2_len & 0x3f;
        let at = if v6 { 6 } else { 9 };
        // SAFETY: as in `new`; the byte is read only once the verifier
        // has seen it checked against data_end.
        let p = unsafe {
            let data = (*self.skb()).data as usize;
            let end = (*self.skb()).data_end as usize;
            // l2_len is 0 or 14; the mask bounds it for the verifier.
            let ip = data + l2 as usize;
            if ip + 10 <= end {
                *((ip + at) as *const u8)
            } else if (*self.skb()).ingress_ifindex == 0 {
                return false;
            } else {
                let mut b = 0u8;
                // SAFETY: the helper checks the packet's bounds.
                let rc = bpf_skb_load_bytes(
                    self.skb() as *const _,
                    l2 + at as u32,
                    &mut b as *mut u8 as *mut _,
                    1,
                );
                if rc != 0 {
                    return true;
                }
                b
            }
        };
        p == 1 || p == 58
    }

    /// As many of the first bytes after the link-layer header as the
    /// packet has, in one helper call (the length must not run past the
    /// skb).
    #[inline(always)]
    fn read<const N: usize>(&self, dst: *mut [u64; N]) -> Option<u32> {
        let l2 = self.iface.l2_len;
        let len = self.ctx.len();
        if len < l2 + 20 {
            return None;
        }
        let max = (8 * N) as u32;
        let n = len - l2;
        let n = if n < max { n } else { max };
        // The same n, in a form the verifier bounds to 1..=max (max is a
        // power of two), which the helper's length must be.
        let n = ((n - 1) & (max - 1)) + 1;
        // SAFETY: the helper checks the packet's bounds; `dst` has `max`
        // bytes.
        let rc = unsafe { bpf_skb_load_bytes(self.skb() as *const _, l2, dst as *mut _, n) };
        (rc == 0).then_some(n)
    }

    /// Whole words straight from the packet's linear data (no helper
    /// call). A packet shorter than `8 * N` bytes that ends inside a word
    /// has its last bytes read one by one, zeroes after them. Packets whose headers are
    /// not in the linear data (packet sockets' frames) go through `read`.
    #[inline(always)]
    fn snapshot<const N: usize>(&self, dst: *mut [u64; N]) -> Option<u32> {
        // SAFETY: as in `new`; each word is read only once the verifier
        // has seen it checked against data_end; `dst` has N words.
        unsafe {
            let data = (*self.skb()).data as usize;
            let end = (*self.skb()).data_end as usize;
            // l2_len is 0 or 14; the mask bounds it for the verifier.
            let ip = data + (self.iface.l2_len & 0x3f) as usize;
            if ip + 24 > end {
                return self.read::<N>(dst);
            }
            let d = dst as *mut u64;
            let mut n = 0;
            for i in 0..N {
                let at = ip + 8 * i;
                if at + 8 > end {
                    // The data ends inside this word: its last 1 to 7
                    // bytes one by one (constant offsets, each checked:
                    // what the verifier accepts; a computed offset to the
                    // eight that end it is rewritten by the compiler into
                    // one the verifier refuses).
                    let mut w = 0u64;
                    let mut k = 0;
                    while k < 7 {
                        let p = at + k;
                        if p + 1 > end {
                            break;
                        }
                        w |= u64::from(core::ptr::read_volatile(p as *const u8)) << (8 * k);
                        k += 1;
                    }
                    if k > 0 {
                        core::ptr::write_volatile(d.add(i), w);
                        n += k as u32;
                    }
                    break;
                }
                core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(at as *const u64));
                n += 8;
            }
            Some(n)
        }
    }
}

#[classifier]
pub fn pkt_rx_tc(ctx: TcContext) -> i32 {
    if let Some(p) = TcPkt::new(&ctx) {
        let _ = rx(&p);
    }
    TC_ACT_UNSPEC
}

#[classifier]
pub fn pkt_tx_tc(ctx: TcContext) -> i32 {
    if let Some(p) = TcPkt::new(&ctx) {
        let _ = tx(&p);
    }
    TC_ACT_UNSPEC
}
