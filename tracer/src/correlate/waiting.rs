//! Changes waiting for their other half, in arrival order, found by netlink
//! sequence number without a scan: a flush of a million routes can leave
//! hundreds of thousands waiting at once (requests read ahead of their
//! notifications), and each notification must find its request quickly.
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Ids sharing a sequence number (usually one).
enum Ids {
    One(u64),
    Many(Vec<u64>),
}

impl Ids {
    fn as_slice(&self) -> &[u64] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(v) => v,
        }
    }
}

/// Tables larger than this (entries) are given back once empty.
const SHRINK_ABOVE: usize = 4096;

/// Ids under one key, in arrival order.
type Index<K> = HashMap<K, Ids, foldhash::fast::RandomState>;

fn index_add<K: std::hash::Hash + Eq>(map: &mut Index<K>, key: K, id: u64) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, Ids::One(id));
        }
        Some(Ids::One(first)) => {
            let first = *first;
            map.insert(key, Ids::Many(vec![first, id]));
        }
        Some(Ids::Many(v)) => v.push(id),
    }
}

fn index_remove<K: std::hash::Hash + Eq>(map: &mut Index<K>, key: K, id: u64) {
    let gone = match map.get_mut(&key) {
        Some(Ids::Many(v)) => {
            if let Some(i) = v.iter().position(|x| *x == id) {
                v.remove(i);
            }
            v.is_empty()
        }
        Some(Ids::One(_)) => true,
        None => false,
    };
    if gone {
        map.remove(&key);
    }
}

/// Waiting items of type `T`, each with a sequence number and a sender (the
/// requester's pid, or the netlink port id a notification names). Items sit
/// in a window of slots in arrival order (id = `base` + position): no
/// hash-table slot per item.
///
/// Indexed by sender as well as by sequence number: iproute2 numbers each
/// run's requests from `time(NULL)`, so every `ip` run of the same second,
/// and under churn of the last minutes, shares the same numbers; by
/// sequence number alone a lookup scanned them all (78–81% of a tracer's
/// CPU once it was behind, in the soak).
pub struct Waiting<T> {
    /// Boxed, so that a slot already taken costs a pointer while an old
    /// item keeps the window open.
    slots: VecDeque<Option<Box<(u32, u32, T)>>>,
    /// Id of `slots[0]`.
    base: u64,
    live: usize,
    /// Ids by sequence number, in arrival order (foldhash: SipHash was a
    /// visible share of a flush's CPU time; the seed is still random).
    by_seq: Index<u32>,
    /// Ids by sequence number and sender, in arrival order.
    by_sender: Index<(u32, u32)>,
    /// How many indexed items each sender has waiting.
    senders: HashMap<u32, usize, foldhash::fast::RandomState>,
    /// Ids not indexed by sequence number (found by scanning, in order).
    unindexed: BTreeSet<u64>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting {
            slots: VecDeque::new(),
            base: 0,
            live: 0,
            by_seq: HashMap::default(),
            by_sender: HashMap::default(),
            senders: HashMap::default(),
            unindexed: BTreeSet::new(),
        }
    }
}

impl<T> Waiting<T> {
    pub fn len(&self) -> usize {
        self.live
    }

    fn slot(&self, id: u64) -> Option<&(u32, u32, T)> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get(i)?.as_deref()
    }

    fn find(&self, ids: Option<&Ids>, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        ids?.as_slice()
            .iter()
            .copied()
            .find(|id| self.slot(*id).is_some_and(|(_, _, t)| pred(t)))
    }

    /// The id the next pushed item will get: the place in the arrival
    /// order of something that arrives now.
    pub fn next_id(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Add an item. `indexed`: it is only ever looked for by its own
    /// sequence number (`first_with_seq`, `first_from`); otherwise by
    /// `first_unindexed`.
    pub fn push(&mut self, seq: u32, sender: u32, indexed: bool, item: T) -> u64 {
        let id = self.next_id();
        self.slots.push_back(Some(Box::new((seq, sender, item))));
        self.live += 1;
        if indexed {
            index_add(&mut self.by_seq, seq, id);
            index_add(&mut self.by_sender, (seq, sender), id);
            *self.senders.entry(sender).or_default() += 1;
        } else {
            self.unindexed.insert(id);
        }
        id
    }

    /// The oldest indexed item with sequence number `seq`, of any sender,
    /// that `pred` accepts (a scan of that number's items).
    pub fn first_with_seq(&self, seq: u32, pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.find(self.by_seq.get(&seq), pred)
    }

    /// The oldest indexed item with sequence number `seq` from `sender`
    /// that `pred` accepts.
    pub fn first_from(&self, seq: u32, sender: u32, pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.find(self.by_sender.get(&(seq, sender)), pred)
    }

    /// Whether `sender` has indexed items waiting.
    pub fn has_sender(&self, sender: u32) -> bool {
        self.senders.contains_key(&sender)
    }

    /// The item the other half of a netlink exchange (`seq` from `sender`)
    /// belongs with: the oldest of `sender`'s own with that number, else the
    /// oldest of any sender's, unless `sender` has items waiting. A
    /// notification's port id is its requester's pid unless the requester
    /// has a second socket, bound its socket to another number, shares it
    /// with a child, or lives in another pid namespace: then no item has
    /// that sender and any may match. When the sender is known, its item
    /// with this number was lost (the ring buffer was full), and another
    /// process's request with the same number is not it; looking anyway
    /// scanned every `ip` run of the last minutes under churn.
    pub fn first_for(
        &self,
        seq: u32,
        sender: u32,
        mut pred: impl FnMut(&T) -> bool,
    ) -> Option<u64> {
        self.first_from(seq, sender, &mut pred).or_else(|| {
            (sender == 0 || !self.has_sender(sender))
                .then(|| self.first_with_seq(seq, pred))
                .flatten()
        })
    }

    /// The oldest unindexed item that `pred` accepts.
    pub fn first_unindexed(&self, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.unindexed
            .iter()
            .copied()
            .find(|id| self.slot(*id).is_some_and(|(_, _, t)| pred(t)))
    }

    /// The oldest item of all that `pred` accepts (a scan).
    pub fn first(&self, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.iter().find(|(_, t)| pred(t)).map(|(id, _)| id)
    }

    /// Every item still waiting with its id, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| s.as_deref().map(|(_, _, t)| (base + i as u64, t)))
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        self.slot(id).map(|(_, _, t)| t)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)?.as_deref_mut().map(|(_, _, t)| t)
    }

    /// Take an item out.
    pub fn take(&mut self, id: u64) -> Option<T> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        let (seq, sender, item) = *self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        if !self.unindexed.remove(&id) {
            index_remove(&mut self.by_seq, seq, id);
            index_remove(&mut self.by_sender, (seq, sender), id);
            if let Some(n) = self.senders.get_mut(&sender) {
                *n -= 1;
                if *n == 0 {
                    self.senders.remove(&sender);
                }
            }
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.live == 0 {
            self.shrink();
        }
        Some(item)
    }

    /// Once nothing waits, give back what a backlog grew (a tracer behind
    /// held hundreds of thousands of items; the tables never shrink on
    /// their own, and the memory stayed with the process after it caught
    /// up). Small tables are kept.
    fn shrink(&mut self) {
        if self.slots.capacity() > SHRINK_ABOVE {
            self.slots = VecDeque::new();
        }
        if self.by_seq.capacity() > SHRINK_ABOVE {
            self.by_seq = HashMap::default();
        }
        if self.by_sender.capacity() > SHRINK_ABOVE {
            self.by_sender = HashMap::default();
        }
        if self.senders.capacity() > SHRINK_ABOVE {
            self.senders = HashMap::default();
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.capacity() + self.by_seq.capacity() + self.by_sender.capacity()
    }

    /// The oldest item still waiting.
    pub fn front(&self) -> Option<(u64, &T)> {
        self.iter().next()
    }

    /// Every item still waiting, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten().map(|b| &mut b.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_seq_in_arrival_order() {
        let mut w = Waiting::default();
        let a = w.push(7, 1, true, "a");
        let b = w.push(7, 1, true, "b");
        let c = w.push(9, 1, true, "c");
        let k = w.push(0, 1, false, "k");
        assert_eq!(w.first_with_seq(7, |_| true), Some(a));
        assert_eq!(w.first_with_seq(7, |t| *t == "b"), Some(b));
        assert_eq!(w.first_with_seq(8, |_| true), None);
        assert_eq!(w.first_unindexed(|_| true), Some(k));
        assert_eq!(w.first(|t| *t == "k"), Some(k));
        assert_eq!(w.take(a), Some("a"));
        assert_eq!(w.front().map(|(id, _)| id), Some(b));
        assert_eq!(w.first_with_seq(7, |_| true), Some(b));
        assert_eq!(w.take(k), Some("k"));
        assert_eq!(w.first_unindexed(|_| true), None);
        assert_eq!(w.len(), 2);
        assert_eq!(w.take(b), Some("b"));
        assert_eq!(w.take(b), None);
        assert_eq!(w.front().map(|(id, _)| id), Some(c));
        assert_eq!(w.first_with_seq(9, |_| true), Some(c));
    }

    #[test]
    fn finds_by_sender_and_counts_senders() {
        let mut w = Waiting::default();
        let a = w.push(7, 100, true, "a");
        let b = w.push(7, 200, true, "b");
        let c = w.push(7, 200, true, "c");
        let k = w.push(7, 300, false, "k");
        assert_eq!(w.first_from(7, 200, |_| true), Some(b));
        assert_eq!(w.first_from(7, 200, |t| *t == "c"), Some(c));
        assert_eq!(w.first_from(7, 300, |_| true), None, "unindexed");
        assert_eq!(w.first_from(8, 100, |_| true), None);
        assert_eq!(w.first_with_seq(7, |_| true), Some(a));
        assert!(w.has_sender(100) && w.has_sender(200) && !w.has_sender(300));
        assert_eq!(w.take(b), Some("b"));
        assert!(w.has_sender(200));
        assert_eq!(w.first_from(7, 200, |_| true), Some(c));
        assert_eq!(w.take(c), Some("c"));
        assert!(!w.has_sender(200));
        assert_eq!(w.first_from(7, 200, |_| true), None);
        assert_eq!(w.first_with_seq(7, |_| true), Some(a));
        assert_eq!(w.take(a), Some("a"));
        assert!(!w.has_sender(100));
        assert_eq!(w.first_with_seq(7, |_| true), None);
        assert_eq!(w.take(k), Some("k"));
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_backlog_gives_its_memory_back_once_gone() {
        let mut w = Waiting::default();
        let ids: Vec<u64> = (0..100_000u32).map(|i| w.push(i, i % 7, true, i)).collect();
        assert!(w.capacity() > 100_000);
        for id in &ids[..99_999] {
            w.take(*id);
        }
        assert!(w.capacity() > 100_000, "still one waiting");
        w.take(ids[99_999]);
        assert!(w.capacity() < 3 * SHRINK_ABOVE, "{}", w.capacity());
        // And it works on.
        let a = w.push(5, 1, true, 5);
        assert_eq!(w.first_from(5, 1, |_| true), Some(a));
    }
}
