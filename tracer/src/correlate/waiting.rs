//! Changes waiting for their other half, in arrival order, found by netlink
//! sequence number without a scan: a flush of a million routes can leave
//! hundreds of thousands waiting at once (requests read ahead of their
//! notifications), and each notification must find its request quickly.
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Waiting items of type `T`, each with a sequence number.
pub struct Waiting<T> {
    items: HashMap<u64, (u32, T)>,
    /// Ids in arrival order; ids already taken are skipped lazily.
    order: VecDeque<u64>,
    /// Ids by sequence number, in arrival order.
    by_seq: HashMap<u32, Vec<u64>>,
    /// Ids not indexed by sequence number (found by scanning, in order).
    unindexed: BTreeSet<u64>,
    next: u64,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting {
            items: HashMap::new(),
            order: VecDeque::new(),
            by_seq: HashMap::new(),
            unindexed: BTreeSet::new(),
            next: 0,
        }
    }
}

impl<T> Waiting<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Add an item. `indexed`: it is only ever looked for by its own
    /// sequence number (`first_with_seq`); otherwise by `first_unindexed`.
    pub fn push(&mut self, seq: u32, indexed: bool, item: T) -> u64 {
        let id = self.next;
        self.next += 1;
        self.items.insert(id, (seq, item));
        self.order.push_back(id);
        if indexed {
            self.by_seq.entry(seq).or_default().push(id);
        } else {
            self.unindexed.insert(id);
        }
        id
    }

    /// The oldest indexed item with sequence number `seq` that `pred` accepts.
    pub fn first_with_seq(&self, seq: u32, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.by_seq
            .get(&seq)?
            .iter()
            .copied()
            .find(|id| self.items.get(id).is_some_and(|(_, t)| pred(t)))
    }

    /// The oldest unindexed item that `pred` accepts.
    pub fn first_unindexed(&self, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.unindexed
            .iter()
            .copied()
            .find(|id| self.items.get(id).is_some_and(|(_, t)| pred(t)))
    }

    /// The oldest item of all that `pred` accepts (a scan).
    pub fn first(&self, mut pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.order
            .iter()
            .copied()
            .find(|id| self.items.get(id).is_some_and(|(_, t)| pred(t)))
    }

    /// Every item still waiting with its id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.items.iter().map(|(id, (_, t))| (*id, t))
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        self.items.get(&id).map(|(_, t)| t)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.items.get_mut(&id).map(|(_, t)| t)
    }

    /// Take an item out.
    pub fn take(&mut self, id: u64) -> Option<T> {
        let (seq, item) = self.items.remove(&id)?;
        if !self.unindexed.remove(&id) {
            if let Some(ids) = self.by_seq.get_mut(&seq) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_seq.remove(&seq);
                }
            }
        }
        Some(item)
    }

    /// The oldest item still waiting.
    pub fn front(&mut self) -> Option<(u64, &T)> {
        while let Some(id) = self.order.front().copied() {
            if self.items.contains_key(&id) {
                return self.items.get(&id).map(|(_, t)| (id, t));
            }
            self.order.pop_front();
        }
        None
    }

    /// Every item still waiting, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.values_mut().map(|(_, t)| t)
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
        assert_eq!(w.len(), 1);
    }
}
