//! Is this packet's interface watched? Every packet on the machine asks,
//! so the common answer (no) must be cheap: the device's ifindex is looked
//! up in a bitmap first, and only an interface whose bit is set pays for
//! its namespace and the (namespace, ifindex) hash lookup.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use tracer_common::{WATCH_BITMAP_WORDS, WatchKey, watch_bit};

use super::kmem::{Kmem, off};

/// The watched interfaces (value unused).
#[map]
pub static WATCH_IFACES: HashMap<WatchKey, u8> = HashMap::with_max_entries(256, 0);

/// Bit [`watch_bit`]`(ifindex)` is set for every watched interface, in
/// any namespace (a superset: ifindexes repeat across namespaces and the
/// bitmap folds large ones).
#[map]
pub static WATCH_IFINDEX: Array<u64> = Array::with_max_entries(WATCH_BITMAP_WORDS, 0);

/// The watched interface `skb` is on, or None.
#[inline(always)]
pub fn watched<M: Kmem>(skb: *const u8) -> Option<WatchKey> {
    let dev = M::ptr(skb, off!(skb_dev));
    let ifindex: u32 = M::get(dev, off!(dev_ifindex));
    let (word, bit) = watch_bit(ifindex);
    if (*WATCH_IFINDEX.get(word)? >> bit) & 1 == 0 {
        return None;
    }
    let key = WatchKey {
        netns: M::get(M::ptr(dev, off!(dev_net)), off!(net_inum)),
        ifindex,
    };
    // SAFETY: the value is not used.
    unsafe { WATCH_IFACES.get(&key) }?;
    Some(key)
}
