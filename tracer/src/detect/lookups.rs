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
    // FIB tracing starts with a flow's first loop candidate, possibly in
    // the middle of a packet's routing: then the earliest lookups are that
    // packet's last ones and the next packet's first follow. Routing
    // starts at the local table (the rule of preference 0), so the tables
    // go back in that order.
    if let Some(i) = tables.iter().position(|(t, _)| *t == RT_TABLE_LOCAL) {
        tables.rotate_left(i);
    }
    (tables, hairpin)
}

/// The local table, which the rule of preference 0 looks up first.
const RT_TABLE_LOCAL: u32 = 255;

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(ts_ns: u64, table: u32, err: i32, result_dev: &str) -> LookupObs {
        crate::detect::test_stream::lookup(
            ts_ns,
            table,
            err,
            result_dev,
            "100.119.140.15",
            "192.168.1.90",
        )
    }

    #[test]
    fn a_packet_cut_by_tracing_starting_keeps_the_routing_order() {
        // Tracing started after packet 1's local lookup: its table 52
        // lookup, then packet 2's local and table 52 lookups.
        let cands = [
            obs(10, 52, 0, "tailscale0"),
            obs(20, 255, -11, ""),
            obs(21, 52, 0, "tailscale0"),
        ];
        let iif = cands[0].iif;
        let (tables, hairpin) = select(&cands, iif, "tailscale0");
        assert_eq!(tables, [(255, -11), (52, 0)]);
        assert_eq!(hairpin.unwrap().ts_ns, 10);
        // A whole packet: as it came.
        let (tables, _) = select(&cands[1..], iif, "tailscale0");
        assert_eq!(tables, [(255, -11), (52, 0)]);
    }
}
