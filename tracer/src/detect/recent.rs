//! Recent packets of one interface in one direction, indexed by the fields
//! a looped copy keeps, bounded by age and by count (oldest dropped).
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use super::{PacketBrief, flows::FlowKey, matching::MatchKey};

/// One recent packet.
pub(super) struct Entry {
    pub p: PacketBrief,
    pub bytes: Arc<[u8]>,
    /// Rx: matched as an original; Tx: counted as a looped copy.
    pub used: bool,
    /// The flow it belongs to: Tx, the one it was counted in; Rx, the one
    /// it is the original of, or a looped copy that came back in.
    pub flow: Option<FlowKey>,
    /// Already handed to the capture.
    pub captured: bool,
}

impl Entry {
    pub fn new(p: PacketBrief, bytes: Arc<[u8]>) -> Self {
        Entry {
            p,
            bytes,
            used: false,
            flow: None,
            captured: false,
        }
    }
}

/// Entries in arrival order, each known by a sequence number.
pub(super) struct Recent {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`.
    first: u64,
    index: HashMap<MatchKey, Vec<u64>>,
    cap: usize,
}

impl Recent {
    pub fn new(cap: usize) -> Self {
        Recent {
            entries: VecDeque::new(),
            first: 0,
            index: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Keep a packet (dropping the oldest when full); its sequence number.
    pub fn push(&mut self, e: Entry) -> u64 {
        while self.entries.len() >= self.cap {
            self.pop_front();
        }
        let seq = self.first + self.entries.len() as u64;
        self.index.entry(MatchKey::of(&e.p)).or_default().push(seq);
        self.entries.push_back(e);
        seq
    }

    pub fn get(&self, seq: u64) -> Option<&Entry> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.entries.get(i)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.entries.get_mut(i)
    }

    /// Sequence numbers of the packets with this key.
    pub fn bucket(&self, key: &MatchKey) -> Vec<u64> {
        self.index.get(key).cloned().unwrap_or_default()
    }

    /// Drop packets older than `before_ns` (from the oldest arrival on;
    /// one delivered late waits behind newer ones for a moment).
    pub fn prune(&mut self, before_ns: u64) {
        while self.entries.front().is_some_and(|e| e.p.ts_ns < before_ns) {
            self.pop_front();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn pop_front(&mut self) {
        let Some(e) = self.entries.pop_front() else {
            return;
        };
        let key = MatchKey::of(&e.p);
        if let Some(v) = self.index.get_mut(&key) {
            let first = self.first;
            v.retain(|s| *s != first);
            if v.is_empty() {
                self.index.remove(&key);
            }
        }
        self.first += 1;
    }
}
