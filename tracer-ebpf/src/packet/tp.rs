//! The packet programs on tracepoints: netif_receive_skb (received) and
//! net_dev_queue (queued for transmission). They see every packet on the
//! machine and stop at `watch` unless its interface is watched. Userspace
//! uses them for interfaces it cannot attach the `tc` programs to, or
//! when TRACER_PACKET_HOOK asks for them.
use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel,
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use tracer_common::{NO_OFFSET, WatchKey, dir};

use super::{
    Source,
    kmem::{Direct, Kmem, Probe, off},
    rx, tx,
    watch::watched,
};

/// An skb handed to a tracepoint, read through `M`.
struct TpSkb<M: Kmem> {
    skb: *const u8,
    dir: u8,
    _m: core::marker::PhantomData<M>,
}

impl<M: Kmem> TpSkb<M> {
    #[inline(always)]
    fn new(skb: *const u8, dir: u8) -> Self {
        TpSkb {
            skb,
            dir,
            _m: core::marker::PhantomData,
        }
    }

    /// The IP header. Received packets: the link-layer header has been
    /// pulled, data is the IP header. Queued packets: data may be the
    /// link-layer header, so start at the network header.
    #[inline(always)]
    fn l3(&self) -> *const u8 {
        if self.dir == dir::RX {
            M::ptr(self.skb, off!(skb_data))
        } else {
            let head = M::ptr(self.skb, off!(skb_head));
            head.wrapping_add(M::get::<u16>(self.skb, off!(skb_network_header)) as usize)
        }
    }
}

impl<M: Kmem> Source for TpSkb<M> {
    #[inline(always)]
    fn watched(&self) -> Option<WatchKey> {
        watched::<M>(self.skb)
    }

    #[inline(always)]
    fn protocol(&self) -> u16 {
        u16::from_be(M::get::<u16>(self.skb, off!(skb_protocol)))
    }

    #[inline(always)]
    fn skb_len(&self) -> u32 {
        M::get(self.skb, off!(skb_len))
    }

    #[inline(always)]
    fn mark(&self) -> u32 {
        M::get(self.skb, off!(skb_mark))
    }

    #[inline(always)]
    fn ingress_ifindex(&self, key: &WatchKey) -> u32 {
        let off = off!(skb_iif);
        if off == NO_OFFSET {
            return key.ifindex;
        }
        M::get::<i32>(self.skb, off) as u32
    }

    /// Always `8 * N` bytes: where the packet ends is not known here (the
    /// bytes after it are the buffer's, and the parsers stop at the IP
    /// lengths).
    #[inline(always)]
    fn read<const N: usize>(&self, dst: *mut [u64; N]) -> Option<u32> {
        let n = core::mem::size_of::<[u64; N]>() as u32;
        // SAFETY: the helper checks the source and fills `dst`.
        let rc = unsafe { bpf_probe_read_kernel(dst as *mut _, n, self.l3() as *const _) };
        (rc == 0).then_some(n)
    }
}

// BTF-enabled tracepoints (preferred): the skb is a typed argument, and
// its members are read with plain loads.

#[btf_tracepoint(function = "netif_receive_skb")]
pub fn pkt_rx_btf(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = rx(&TpSkb::<Direct>::new(skb as *const u8, dir::RX));
    0
}

#[btf_tracepoint(function = "net_dev_queue")]
pub fn pkt_tx_btf(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = tx(&TpSkb::<Direct>::new(skb as *const u8, dir::TX));
    0
}

// Raw tracepoints: the skb is the first argument, read with helpers. The
// kernel does not build the classic tracepoint's record for every packet.

#[raw_tracepoint(tracepoint = "netif_receive_skb")]
pub fn pkt_rx_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = rx(&TpSkb::<Probe>::new(skb as *const u8, dir::RX));
    0
}

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn pkt_tx_raw(ctx: RawTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let _ = tx(&TpSkb::<Probe>::new(skb as *const u8, dir::TX));
    0
}

// Classic tracepoints: the last resort.

/// The skb argument of a classic net tracepoint (field offset `tp_off`).
#[inline(always)]
fn tp_skb(ctx: &TracePointContext, tp_off: u32) -> Option<*const u8> {
    if tp_off == NO_OFFSET {
        return None;
    }
    // SAFETY: offset from the tracepoint's format file.
    let skb: u64 = unsafe { ctx.read_at(tp_off as usize) }.ok()?;
    Some(skb as *const u8)
}

#[tracepoint(category = "net", name = "netif_receive_skb")]
pub fn pkt_rx(ctx: TracePointContext) -> u32 {
    let _ = tp_skb(&ctx, off!(tp_rx_skb)).and_then(|skb| rx(&TpSkb::<Probe>::new(skb, dir::RX)));
    0
}

#[tracepoint(category = "net", name = "net_dev_queue")]
pub fn pkt_tx(ctx: TracePointContext) -> u32 {
    let _ = tp_skb(&ctx, off!(tp_tx_skb)).and_then(|skb| tx(&TpSkb::<Probe>::new(skb, dir::TX)));
    0
}
