//! One pass over the window's journal entries, in time order: the history
//! of each object, the namespaces seen, the timeline's snapshot, loss,
//! session and journal items, the changes to group into episodes, and the
//! loops.
use std::collections::BTreeMap;

use super::{
    applied,
    chart::Rows,
    fate::{History, Mark},
    identity::{Actor, ActorKey, Key, NsKey, Object},
    loops::Loops,
    mark,
    model::{Item, JournalItem, LostItem, Session, SnapshotItem, Time},
    note_ns,
    select::Select,
};
use crate::{
    event::{Change, Netns, Op, StateEntry},
    journal::read::{Data, Entry, ReadySeen},
};

/// What one pass over the entries gathers.
#[derive(Default)]
pub(super) struct Scan {
    pub history: History,
    pub namespaces: Vec<Netns>,
    pub timeline: Vec<Item>,
    pub not_shown: BTreeMap<String, usize>,
    /// (position, time, who) of each change `sel` keeps.
    pub changes: Vec<(usize, Time, ActorKey)>,
    pub loops: Loops,
    /// The picture's rows (`--format html`).
    pub rows: Rows,
    /// Snapshot items of the current session, by namespace: timeline index.
    snapshots: BTreeMap<NsKey, usize>,
}

impl Scan {
    /// Take in the entry at position `seq`.
    pub fn entry(&mut self, seq: usize, e: &Entry, sel: &Select) {
        match &e.data {
            Data::Change(op, c) => self.change(seq, e, *op, c, sel),
            Data::Snapshot(s) => self.snapshot(seq, e, s, sel),
            Data::SnapshotEnd(s) => {
                let i = self.snapshot_item(e.ts, &s.netns);
                if let Item::Snapshot(item) = &mut self.timeline[i] {
                    item.complete = true;
                }
            }
            Data::Loop(phase, l) => {
                note_ns(&mut self.namespaces, &l.netns);
                self.loops.add(e.ts, *phase, l);
            }
            Data::Lost(l) => self.timeline.push(Item::Lost(LostItem {
                ts: e.ts,
                count: l.count,
                location: l.location.clone(),
            })),
            Data::Ready(r) => self.ready(e.ts, r),
            Data::Journal(j) => self.timeline.push(Item::Journal(JournalItem {
                ts: e.ts,
                kind: e.kind.clone(),
                path: j.path.clone(),
                error: j.error.clone(),
                dropped: j.dropped,
            })),
            Data::Other(_) => *self.not_shown.entry(e.kind.clone()).or_insert(0) += 1,
        }
    }

    fn change(&mut self, seq: usize, e: &Entry, op: Op, c: &Change, sel: &Select) {
        note_ns(&mut self.namespaces, &c.netns);
        let Some(obj) = Object::of(c).filter(|o| sel.object(o)) else {
            return;
        };
        if applied(c) {
            let by = Actor::of(c.process.as_deref());
            let key = Key::new(&c.netns, &obj);
            // A replaced route is gone, but nothing is missing: the
            // new route holds its place.
            if let Some(old) = &c.old {
                let old_obj = Object::Route(old.clone());
                let old_key = Key::new(&c.netns, &old_obj);
                if old_key != key {
                    self.rows.change(
                        old_key.clone(),
                        &c.netns,
                        &old_obj,
                        e.ts,
                        Mark::Replaced,
                        &by,
                    );
                    self.history
                        .push(old_key, seq, e.ts, Mark::Replaced, by.clone());
                }
            }
            let m = mark(op, c);
            self.rows.change(key.clone(), &c.netns, &obj, e.ts, m, &by);
            self.history.push(key, seq, e.ts, m, by);
        }
        self.changes
            .push((seq, e.ts, Actor::key(c.process.as_deref())));
    }

    fn snapshot(&mut self, seq: usize, e: &Entry, s: &StateEntry, sel: &Select) {
        note_ns(&mut self.namespaces, &s.netns);
        let obj = match (&s.rule, &s.route) {
            (Some(r), _) => Object::Rule(r.clone()),
            (_, Some(r)) => Object::Route(r.clone()),
            _ => return,
        };
        let i = self.snapshot_item(e.ts, &s.netns);
        if !sel.object(&obj) {
            return;
        }
        if let Item::Snapshot(item) = &mut self.timeline[i] {
            match obj {
                Object::Rule(_) => item.rules += 1,
                _ => item.routes += 1,
            }
        }
        let key = Key::new(&s.netns, &obj);
        self.rows.seen(key.clone(), e.ts);
        self.history
            .push(key, seq, e.ts, Mark::Seen, Actor::default());
    }

    /// The timeline index of this session's snapshot item for `netns`,
    /// added (empty, at `ts`) when there is none yet.
    fn snapshot_item(&mut self, ts: Time, netns: &Netns) -> usize {
        *self.snapshots.entry(NsKey::of(netns)).or_insert_with(|| {
            self.timeline.push(Item::Snapshot(SnapshotItem {
                ts,
                netns: netns.clone(),
                rules: 0,
                routes: 0,
                complete: false,
            }));
            self.timeline.len() - 1
        })
    }

    /// A new session: its snapshots start afresh.
    fn ready(&mut self, ts: Time, r: &ReadySeen) {
        self.snapshots.clear();
        for n in &r.namespaces {
            note_ns(&mut self.namespaces, n);
        }
        self.timeline.push(Item::Session(Session {
            ts,
            pid: r.pid,
            version: r.version.clone(),
            kernel: r.kernel.clone(),
            namespaces: r.namespaces.clone(),
        }));
    }
}
