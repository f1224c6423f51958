//! Recent FIB lookups, and which of them one packet's routing made.
use std::collections::VecDeque;

use crate::collect::packet::LookupObs;

/// Recent lookups in arrival order, bounded by age and count.
pub(super) struct Lookups {
    recent: VecDeque<LookupObs>,
    cap: usize,
}

impl Lookups {
    pub fn new(cap: usize) -> Self {
        Lookups {
            recent: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, l: LookupObs) {
        while self.recent.len() >= self.cap {
            self.recent.pop_front();
        }
        self.recent.push_back(l);
    }

    pub fn prune(&mut self, before_ns: u64) {
        while self.recent.front().is_some_and(|l| l.ts_ns < before_ns) {
            self.recent.pop_front();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &LookupObs> {
        self.recent.iter()
    }
}

/// One packet's lookups among candidates (a flow's addresses and input
/// interface, from its first packet on): the earliest packet's, in time
/// order, up to the first table seen twice (that is the next packet's
/// routing). Returns
/// (table, err) for each and the hairpin: the successful one whose result
/// device is the interface the packet came in on.
pub(super) fn select(
    cands: &[LookupObs],
    ifindex: u32,
    iface: &str,
) -> (Vec<(u32, i32)>, Option<LookupObs>) {
    let mut sorted: Vec<&LookupObs> = cands.iter().collect();
    sorted.sort_by_key(|l| l.ts_ns);
    let mut tables: Vec<(u32, i32)> = Vec::new();
    let mut hairpin = None;
    for l in sorted {
        if tables.iter().any(|(t, _)| *t == l.table) {
            break;
        }
        tables.push((l.table, l.err));
        if hairpin.is_none() && l.err == 0 && l.iif == ifindex && l.result_dev == iface {
            hairpin = Some(l.clone());
        }
    }
    (tables, hairpin)
}
