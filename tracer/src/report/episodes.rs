//! Grouping changes into episodes: one process (or unit, or the kernel)
//! making changes with no pause longer than the gap. Another process's
//! changes in between do not split an episode (two daemons may act at once).
use std::collections::HashMap;

use chrono::Duration;

use super::{identity::ActorKey, model::Time};

#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub key: ActorKey,
    /// The changes' positions in the window's events, in order.
    pub seqs: Vec<usize>,
    pub last: Time,
}

/// `changes` in time order: (position, time, who). Episodes come out in
/// the order they start.
pub fn group(
    changes: impl IntoIterator<Item = (usize, Time, ActorKey)>,
    gap: Duration,
) -> Vec<Draft> {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut open: HashMap<ActorKey, usize> = HashMap::new();
    for (seq, ts, key) in changes {
        if let Some(&i) = open.get(&key) {
            let d = &mut drafts[i];
            if ts.signed_duration_since(d.last) <= gap {
                d.seqs.push(seq);
                d.last = d.last.max(ts);
                continue;
            }
        }
        open.insert(key.clone(), drafts.len());
        drafts.push(Draft {
            key,
            seqs: vec![seq],
            last: ts,
        });
    }
    drafts
}
