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

/// Waiting items of type `T`, each with a sequence number. Items sit in a
/// window of slots in arrival order (id = `base` + position): no hash-table
/// slot per item.
pub struct Waiting<T> {
    /// Boxed, so that a slot already taken costs a pointer while an old
    /// item keeps the window open.
    slots: VecDeque<Option<Box<(u32, T)>>>,
    /// Id of `slots[0]`.
    base: u64,
    live: usize,
    /// Ids by sequence number, in arrival order (foldhash: SipHash was a
    /// visible share of a flush's CPU time; the seed is still random).
    by_seq: HashMap<u32, Ids, foldhash::fast::RandomState>,
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
            unindexed: BTreeSet::new(),
        }
    }
}

impl<T> Waiting<T> {
    pub fn len(&self) -> usize {
        self.live
    }

    fn slot(&self, id: u64) -> Option<&(u32, T)> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get(i)?.as_deref()
    }

    /// Add an item. `indexed`: it is only ever looked for by its own
    /// sequence number (`first_with_seq`); otherwise by `first_unindexed`.
    /// The id the next pushed item will get: the place in the arrival
    /// order of something that arrives now.
    pub fn next_id(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    pub fn push(&mut self, seq: u32, indexed: bool, item: T) -> u64 {
        let id = self.base + self.slots.len() as u64;
        self.slots.push_back(Some(Box::new((seq, item))));
        self.live += 1;
        if indexed {
            match self.by_seq.get_mut(&seq) {
                None => {
                    self.by_seq.insert(seq, Ids::One(id));
                }
                Some(Ids::One(first)) => {
                    let first = *first;
                    self.by_seq.insert(seq, Ids::Many(vec![first, id]));
                }
                Some(Ids::Many(v)) => v.push(id),
            }
        } else {
            self.unindexed.insert(id);
        }
        id
    }

    /// The oldest indexed item with sequence number `seq` that `pred` accepts.
    pub fn first_with_seq(&self, seq: u32, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.by_seq
            .get(&seq)?
            .as_slice()
            .iter()
            .copied()
            .find(|id| self.slot(*id).is_some_and(|(_, t)| pred(t)))
    }

    /// The oldest unindexed item that `pred` accepts.
    pub fn first_unindexed(&self, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.unindexed
            .iter()
            .copied()
            .find(|id| self.slot(*id).is_some_and(|(_, t)| pred(t)))
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
            .filter_map(move |(i, s)| s.as_deref().map(|(_, t)| (base + i as u64, t)))
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        self.slot(id).map(|(_, t)| t)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)?.as_deref_mut().map(|(_, t)| t)
    }

    /// Take an item out.
    pub fn take(&mut self, id: u64) -> Option<T> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        let (seq, item) = *self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        if !self.unindexed.remove(&id) {
            let gone = match self.by_seq.get_mut(&seq) {
                Some(Ids::Many(v)) => {
                    v.retain(|x| *x != id);
                    v.is_empty()
                }
                Some(Ids::One(_)) => true,
                None => false,
            };
            if gone {
                self.by_seq.remove(&seq);
            }
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(item)
    }

    /// The oldest item still waiting.
    pub fn front(&self) -> Option<(u64, &T)> {
        self.iter().next()
    }

    /// Every item still waiting, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten().map(|b| &mut b.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_seq_in_arrival_order() {
        let mut w = Waiting::default();
        let a = w.push(7, true, "a");
        let b = w.push(7, true, "b");
        let c = w.push(9, true, "c");
        let k = w.push(0, false, "k");
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
}
