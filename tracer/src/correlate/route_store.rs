//! The mirror's routes of one address family, kept compact: a fixed-size
//! [`Entry`] per route (32 bytes for IPv4, 56 for IPv6) in a vector sorted
//! by key, plus a small ordered map of recent additions that is merged into
//! the vector in bulk. Removals leave holes that a merge squeezes out. A
//! million IPv4 routes take about 28 MB and no allocation per route.
//!
//! A resync marks every route a fresh dump shows ([`Store::see`]); the
//! routes left unmarked at [`Store::end_sync`] are the ones that vanished,
//! and the ones it showed that were not stored are the ones that appeared.
use std::{cmp::Ordering, collections::BTreeMap};

/// `gw` holds a gateway.
pub const HAS_GW: u8 = 1;
/// `metric` was given (RTA_PRIORITY); 0 otherwise.
pub const HAS_METRIC: u8 = 2;
/// `oif` was given (RTA_OIF).
pub const HAS_OIF: u8 = 4;
/// The route is present (entries without it are holes).
const LIVE: u8 = 8;
/// The route was in the dump of the resync in progress.
const SEEN: u8 = 16;

/// Fewest recent additions (or holes) worth a merge.
const MIN_MERGE: usize = 4096;

/// One route; `N` is the address length (4 or 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<const N: usize> {
    pub table: u32,
    pub metric: u32,
    pub oif: u32,
    /// The nexthop object it uses (`nhid`), 0 for none.
    pub nhid: u32,
    pub dst: [u8; N],
    pub gw: [u8; N],
    pub dst_len: u8,
    pub rtype: u8,
    pub protocol: u8,
    pub scope: u8,
    /// HAS_* bits (and the store's own).
    pub flags: u8,
}

/// What identifies a route in a namespace (the family aside): table,
/// destination prefix and metric.
pub type Key<const N: usize> = (u32, [u8; N], u8, u32);

impl<const N: usize> Entry<N> {
    pub fn key(&self) -> Key<N> {
        (self.table, self.dst, self.dst_len, self.metric)
    }

    fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    fn with(mut self, set: u8) -> Self {
        self.flags = (self.flags & (HAS_GW | HAS_METRIC | HAS_OIF)) | set;
        self
    }
}

/// `e.key().cmp(k)`, with the address compared as one big-endian integer
/// (the same order as its bytes) rather than through memcmp: the binary
/// search of a million routes runs once per notification.
fn cmp_key<const N: usize>(e: &Entry<N>, k: &Key<N>) -> Ordering {
    e.table
        .cmp(&k.0)
        .then_with(|| cmp_addr(&e.dst, &k.1))
        .then(e.dst_len.cmp(&k.2))
        .then(e.metric.cmp(&k.3))
}

fn cmp_addr<const N: usize>(a: &[u8; N], b: &[u8; N]) -> Ordering {
    match (<&[u8; 4]>::try_from(&a[..]), <&[u8; 4]>::try_from(&b[..])) {
        (Ok(a), Ok(b)) => u32::from_be_bytes(*a).cmp(&u32::from_be_bytes(*b)),
        _ => match (<&[u8; 16]>::try_from(&a[..]), <&[u8; 16]>::try_from(&b[..])) {
            (Ok(a), Ok(b)) => u128::from_be_bytes(*a).cmp(&u128::from_be_bytes(*b)),
            _ => a.cmp(b),
        },
    }
}

#[derive(Clone, Debug, Default)]
pub struct Store<const N: usize> {
    /// Sorted by key; a key appears once, live or as a hole.
    sorted: Vec<Entry<N>>,
    holes: usize,
    /// Added since the last merge, keys not in `sorted`.
    recent: BTreeMap<Key<N>, Entry<N>>,
    /// Found by the resync in progress and stored nowhere yet.
    fresh: Vec<Entry<N>>,
    /// Found by the resync in progress where `sorted` had a hole.
    revived: Vec<Entry<N>>,
}

impl<const N: usize> Store<N> {
    fn find(&self, k: &Key<N>) -> Result<usize, usize> {
        self.sorted.binary_search_by(|e| cmp_key(e, k))
    }

    pub fn len(&self) -> usize {
        self.sorted.len() - self.holes + self.recent.len()
    }

    /// The live route with key `k`.
    pub fn get(&self, k: &Key<N>) -> Option<&Entry<N>> {
        match self.find(k) {
            Ok(i) => Some(&self.sorted[i]).filter(|e| e.live()),
            Err(_) => self.recent.get(k),
        }
    }

    /// Add or replace a route.
    pub fn insert(&mut self, e: Entry<N>) {
        let e = e.with(LIVE);
        let k = e.key();
        match self.find(&k) {
            Ok(i) => {
                if !self.sorted[i].live() {
                    self.holes -= 1;
                }
                self.sorted[i] = e;
            }
            Err(_) => {
                self.recent.insert(k, e);
                if self.recent.len() > MIN_MERGE.max(self.sorted.len() / 8) {
                    self.merge();
                }
            }
        }
    }

    /// Remove a route; whether it was there.
    pub fn remove(&mut self, k: &Key<N>) -> bool {
        match self.find(k) {
            Ok(i) if self.sorted[i].live() => {
                self.sorted[i].flags &= !LIVE;
                self.holes += 1;
                if self.holes > MIN_MERGE && self.holes > self.sorted.len() / 2 {
                    self.merge();
                }
                true
            }
            Ok(_) => false,
            Err(_) => self.recent.remove(k).is_some(),
        }
    }

    /// Every route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<N>> {
        self.sorted
            .iter()
            .filter(|e| e.live())
            .chain(self.recent.values())
    }

    /// A route of the resync in progress' dump.
    pub fn see(&mut self, e: Entry<N>) {
        let e = e.with(LIVE | SEEN);
        let k = e.key();
        if let Ok(i) = self.find(&k) {
            if !self.sorted[i].live() {
                self.holes -= 1;
                self.revived.push(e);
            }
            self.sorted[i] = e;
        } else if let Some(r) = self.recent.get_mut(&k) {
            *r = e;
        } else {
            self.fresh.push(e);
        }
    }

    /// End a resync. When the dump was `complete`, the routes it did not
    /// show are removed and returned, sorted by key; otherwise nothing is
    /// removed. With `appeared`, the routes it showed that were not stored
    /// are put there (in no particular order).
    pub fn end_sync(
        &mut self,
        complete: bool,
        appeared: Option<&mut Vec<Entry<N>>>,
    ) -> Vec<Entry<N>> {
        let mut gone = Vec::new();
        for e in self.sorted.iter_mut().filter(|e| e.live()) {
            if complete && e.flags & SEEN == 0 {
                gone.push(*e);
                e.flags &= !LIVE;
                self.holes += 1;
            }
            e.flags &= !SEEN;
        }
        self.recent.retain(|_, e| {
            let keep = !complete || e.flags & SEEN != 0;
            if !keep {
                gone.push(*e);
            }
            e.flags &= !SEEN;
            keep
        });
        for e in self.fresh.iter_mut() {
            e.flags &= !SEEN;
        }
        let revived = std::mem::take(&mut self.revived);
        if let Some(out) = appeared {
            let clean = |mut e: Entry<N>| {
                e.flags &= !(SEEN | LIVE);
                e
            };
            out.extend(self.fresh.iter().copied().map(clean));
            out.extend(revived.into_iter().map(clean));
        }
        self.merge();
        gone.sort_unstable_by_key(|e| e.key());
        gone.iter_mut().for_each(|e| e.flags &= !LIVE);
        gone
    }

    /// Fold `recent` and `fresh` into `sorted` and squeeze out the holes,
    /// in place (no second copy of `sorted`).
    fn merge(&mut self) {
        let mut add = std::mem::take(&mut self.fresh);
        add.extend(std::mem::take(&mut self.recent).into_values());
        add.sort_unstable_by_key(|e| e.key());
        add.dedup_by_key(|e| e.key());
        if self.holes > 0 {
            self.sorted.retain(|e| e.live());
            self.holes = 0;
        }
        if self.sorted.is_empty() {
            add.shrink_to_fit();
            self.sorted = add;
            return;
        }
        let (mut i, mut j) = (self.sorted.len(), add.len());
        self.sorted.reserve_exact(add.len());
        self.sorted.extend_from_slice(&add);
        let mut k = self.sorted.len();
        while j > 0 {
            k -= 1;
            if i > 0 && self.sorted[i - 1].key() > add[j - 1].key() {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = add[j - 1];
                j -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(i: u32) -> Entry<4> {
        Entry {
            table: 100,
            metric: 0,
            oif: 2,
            nhid: 0,
            dst: (0x0a00_0000 | i).to_be_bytes(),
            gw: [0; 4],
            dst_len: 32,
            rtype: 1,
            protocol: 3,
            scope: 253,
            flags: HAS_OIF,
        }
    }

    #[test]
    fn keys_compare_like_tuples() {
        let keys4 = [
            e(1),
            e(2),
            e(0x00ff_0000),
            Entry { table: 99, ..e(7) },
            Entry { metric: 5, ..e(1) },
        ];
        for a in &keys4 {
            for b in &keys4 {
                assert_eq!(cmp_key(a, &b.key()), a.key().cmp(&b.key()));
            }
        }
        let v6 = |d: [u8; 16], len| Entry::<16> {
            table: 1,
            metric: 0,
            oif: 0,
            nhid: 0,
            dst: d,
            gw: [0; 16],
            dst_len: len,
            rtype: 1,
            protocol: 3,
            scope: 0,
            flags: 0,
        };
        let mut hi = [0u8; 16];
        hi[0] = 0x20;
        let mut lo = [0u8; 16];
        lo[15] = 0xff;
        let keys6 = [v6(hi, 64), v6(lo, 128), v6(hi, 48), v6([0; 16], 0)];
        for a in &keys6 {
            for b in &keys6 {
                assert_eq!(cmp_key(a, &b.key()), a.key().cmp(&b.key()));
            }
        }
    }

    #[test]
    fn entries_are_small() {
        assert_eq!(std::mem::size_of::<Entry<4>>(), 32);
        assert_eq!(std::mem::size_of::<Entry<16>>(), 56);
    }

    #[test]
    fn inserts_and_removes_across_merges() {
        let mut s = Store::<4>::default();
        for i in (0..20_000).rev() {
            s.insert(e(i));
        }
        assert_eq!(s.len(), 20_000);
        for i in (0..20_000).step_by(2) {
            assert!(s.remove(&e(i).key()));
        }
        assert!(!s.remove(&e(0).key()));
        assert_eq!(s.len(), 10_000);
        s.insert(e(0));
        assert_eq!(s.len(), 10_001);
        let mut keys: Vec<_> = s.iter().map(|x| x.key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 10_001);
    }

    #[test]
    fn resync_returns_what_the_dump_lacks() {
        let mut s = Store::<4>::default();
        for i in 0..10_000 {
            s.insert(e(i));
        }
        // The dump shows the even routes, one twice, and a new one.
        for i in (0..10_000).step_by(2) {
            s.see(e(i));
        }
        s.see(e(0));
        s.see(e(50_000));
        let mut appeared = Vec::new();
        let gone = s.end_sync(true, Some(&mut appeared));
        assert_eq!(gone.len(), 5_000);
        let keys: Vec<_> = appeared.iter().map(|a| a.key()).collect();
        assert_eq!(keys, [e(50_000).key()], "only the new one appeared");
        assert_eq!(appeared[0].flags & (LIVE | SEEN), 0);
        assert!(gone.windows(2).all(|w| w[0].key() < w[1].key()));
        assert_eq!(gone[0].key(), e(1).key());
        assert_eq!(s.len(), 5_001);
        // An incomplete dump removes nothing.
        s.see(e(2));
        assert!(s.end_sync(false, None).is_empty());
        assert_eq!(s.len(), 5_001);
        // A route removed (a hole) and back in a dump appeared again.
        assert!(s.remove(&e(4).key()));
        for i in (0..10_000).step_by(2).chain([50_000]) {
            s.see(e(i));
        }
        let mut appeared = Vec::new();
        assert!(s.end_sync(true, Some(&mut appeared)).is_empty());
        let keys: Vec<_> = appeared.iter().map(|a| a.key()).collect();
        assert_eq!(keys, [e(4).key()]);
        // And leaves no marks behind: a complete empty dump removes all.
        assert_eq!(s.end_sync(true, None).len(), 5_001);
        assert_eq!(s.len(), 0);
    }
}
