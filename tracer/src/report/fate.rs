//! Each rule's and route's history in the window: what was restored after
//! a removal, what an addition puts back, and what is still missing.
use std::collections::HashMap;

use super::{
    identity::{Actor, Key},
    model::{Fate, FateState, Origin, Time},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Add,
    Del,
    /// Removed by the kernel because its interface was deleted
    /// (`cause: link_del`): gone with the interface, not missing.
    Gone,
    /// In a snapshot (present when a recording started).
    Seen,
    /// Replaced by a route with another identity (`route_replace`): gone,
    /// but not missing.
    Replaced,
}

impl Mark {
    /// A removal (by a request, or with its interface).
    pub fn removes(self) -> bool {
        matches!(self, Mark::Del | Mark::Gone)
    }
}

#[derive(Clone, Debug)]
struct Step {
    /// Position in the window's events: the order of the history.
    seq: usize,
    ts: Time,
    mark: Mark,
    by: Actor,
}

#[derive(Debug, Default)]
pub struct History {
    steps: HashMap<Key, Vec<Step>>,
}

impl History {
    /// Records a step; steps must come in `seq` order (they are searched
    /// by it).
    pub fn push(&mut self, key: Key, seq: usize, ts: Time, mark: Mark, by: Actor) {
        self.steps
            .entry(key)
            .or_default()
            .push(Step { seq, ts, mark, by });
    }

    fn at(&self, key: &Key, seq: usize) -> Option<(&[Step], usize)> {
        let steps = self.steps.get(key)?;
        let i = steps.binary_search_by_key(&seq, |s| s.seq).ok()?;
        Some((steps, i))
    }

    /// What became of the removal at `seq`: the first addition or snapshot
    /// of the same object after it, else missing (or gone with its
    /// interface).
    pub fn fate(&self, key: &Key, seq: usize) -> Fate {
        let at = self.at(key, seq);
        let gone = at.is_some_and(|(steps, i)| steps[i].mark == Mark::Gone);
        let next = at.and_then(|(steps, i)| steps[i + 1..].iter().find(|s| !s.mark.removes()));
        match next {
            Some(s) if matches!(s.mark, Mark::Add | Mark::Replaced) => Fate {
                state: FateState::Restored,
                ts: Some(s.ts),
                by: Some(s.by.clone()),
            },
            Some(s) => Fate {
                state: FateState::InSnapshot,
                ts: Some(s.ts),
                by: None,
            },
            None if gone => Fate {
                state: FateState::GoneWithInterface,
                ts: None,
                by: None,
            },
            None => Fate {
                state: FateState::Missing,
                ts: None,
                by: None,
            },
        }
    }

    /// The fate of the latest removal of `key` at or before `ts` (a loop's
    /// suspect, known by its time), when there is one in the window.
    pub fn fate_of_removal_at(&self, key: &Key, ts: Time) -> Option<Fate> {
        let steps = self.steps.get(key)?;
        let del = steps
            .iter()
            .rev()
            .find(|s| s.mark.removes() && s.ts <= ts)?;
        Some(self.fate(key, del.seq))
    }

    /// The removal the addition at `seq` undoes: the object's previous
    /// step, when it is a removal.
    pub fn restores(&self, key: &Key, seq: usize) -> Option<Origin> {
        let (steps, i) = self.at(key, seq)?;
        let prev = steps[..i].last()?;
        prev.mark.removes().then(|| Origin {
            ts: prev.ts,
            by: prev.by.clone(),
        })
    }

    /// The removals (by `seq`) of objects whose last step is a removal
    /// (not one with the interface: those are gone, not missing).
    pub fn missing(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .steps
            .values()
            .filter_map(|s| s.last().filter(|s| s.mark == Mark::Del).map(|s| s.seq))
            .collect();
        out.sort_unstable();
        out
    }
}
