//! The picture's model (`--format html`): one row per rule or route that
//! changed in the window, as spans of time it was present, missing (and
//! who removed it), gone with its interface, or replaced.
use std::collections::HashMap;

use super::{
    fate::Mark,
    identity::{Actor, Key, Object},
    model::Time,
};
use crate::event::Netns;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Present,
    /// Removed and not back (yet).
    Missing,
    /// Removed with its interface.
    Gone,
    /// Replaced by a route of another identity.
    Replaced,
}

#[derive(Clone, Debug)]
pub struct Span {
    /// None: from before the window (it was removed first, so it was there).
    pub from: Option<Time>,
    /// None: to the end of the window.
    pub to: Option<Time>,
    pub state: State,
    /// Who removed it (`Missing`, `Gone`).
    pub by: Option<Actor>,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub netns: Netns,
    pub object: Object,
    pub spans: Vec<Span>,
    /// Changes (not snapshot sightings) in the window.
    pub changes: usize,
    pub missing_at_end: bool,
    first_change: Option<Time>,
}

struct Draft {
    netns: Netns,
    object: Object,
    steps: Vec<(Time, Mark, Actor)>,
    changes: usize,
}

/// Gathers the rows, in time order.
#[derive(Default)]
pub struct Rows {
    drafts: Vec<Draft>,
    by_key: HashMap<Key, usize>,
    /// When objects without a change yet were last seen in a snapshot.
    seen: HashMap<Key, Time>,
}

impl Rows {
    /// A change (`Add`, `Del`, `Gone`, `Replaced`) of `object`.
    pub fn change(
        &mut self,
        key: Key,
        netns: &Netns,
        object: &Object,
        ts: Time,
        m: Mark,
        by: &Actor,
    ) {
        let i = match self.by_key.get(&key) {
            Some(&i) => i,
            None => {
                let mut steps = Vec::new();
                if let Some(t) = self.seen.remove(&key) {
                    steps.push((t, Mark::Seen, Actor::default()));
                }
                self.drafts.push(Draft {
                    netns: netns.clone(),
                    object: object.clone(),
                    steps,
                    changes: 0,
                });
                self.by_key.insert(key, self.drafts.len() - 1);
                self.drafts.len() - 1
            }
        };
        let d = &mut self.drafts[i];
        d.steps.push((ts, m, by.clone()));
        d.changes += 1;
        if m == Mark::Add {
            d.object = object.clone();
        }
    }

    /// `key` in a snapshot at `ts`.
    pub fn seen(&mut self, key: Key, ts: Time) {
        match self.by_key.get(&key) {
            Some(&i) => self.drafts[i]
                .steps
                .push((ts, Mark::Seen, Actor::default())),
            None => {
                self.seen.insert(key, ts);
            }
        }
    }

    /// The rows: what is missing at the end first, then by first change.
    pub fn finish(self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.drafts.into_iter().map(row).collect();
        rows.sort_by_key(|r| (!r.missing_at_end, r.first_change));
        rows
    }
}

fn row(d: Draft) -> Row {
    let first_change = d.steps.iter().find(|s| s.1 != Mark::Seen).map(|s| s.0);
    let missing_at_end = d.steps.last().is_some_and(|s| s.1 == Mark::Del);
    let mut spans = Vec::new();
    // Removed first: it was there before.
    let mut cur: Option<(Option<Time>, State, Option<Actor>)> = match d.steps.first() {
        Some((_, Mark::Del | Mark::Gone | Mark::Replaced, _)) => Some((None, State::Present, None)),
        _ => None,
    };
    for (ts, m, by) in d.steps {
        let (state, by) = match m {
            Mark::Add | Mark::Seen => (State::Present, None),
            Mark::Del => (State::Missing, Some(by)),
            Mark::Gone => (State::Gone, Some(by)),
            Mark::Replaced => (State::Replaced, Some(by)),
        };
        if let Some((from, s, b)) = cur.take() {
            if s == state {
                cur = Some((from, s, b));
                continue;
            }
            spans.push(Span {
                from,
                to: Some(ts),
                state: s,
                by: b,
            });
        }
        cur = Some((Some(ts), state, by));
    }
    if let Some((from, state, by)) = cur {
        spans.push(Span {
            from,
            to: None,
            state,
            by,
        });
    }
    Row {
        netns: d.netns,
        object: d.object,
        spans,
        changes: d.changes,
        missing_at_end,
        first_change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Family, Route};

    fn at(s: u32) -> Time {
        chrono::DateTime::from_timestamp(1_775_800_000 + i64::from(s), 0).unwrap()
    }

    fn throw() -> (Key, Object) {
        let o = Object::Route(Route {
            family: Some(Family::Inet),
            table: Some(52),
            rtype: Some("throw".into()),
            dst: Some("192.168.1.0/24".into()),
            ..Route::default()
        });
        (Key::new(&Netns::default(), &o), o)
    }

    fn who(pid: u32) -> Actor {
        Actor {
            pids: vec![pid],
            comm: Some(format!("p{pid}")),
            ..Actor::default()
        }
    }

    fn states(r: &Row) -> Vec<(Option<Time>, Option<Time>, State)> {
        r.spans.iter().map(|s| (s.from, s.to, s.state)).collect()
    }

    #[test]
    fn spans_follow_the_steps() {
        let (key, o) = throw();
        let ns = Netns::default();
        // In the snapshot, removed, put back, removed again: missing at the end.
        let mut rows = Rows::default();
        rows.seen(key.clone(), at(0));
        rows.change(key.clone(), &ns, &o, at(1), Mark::Del, &who(1));
        rows.change(key.clone(), &ns, &o, at(2), Mark::Add, &who(2));
        rows.seen(key.clone(), at(3)); // a later session's snapshot: no new span
        rows.change(key.clone(), &ns, &o, at(4), Mark::Del, &who(3));
        let r = &rows.finish()[0];
        assert_eq!(
            states(r),
            [
                (Some(at(0)), Some(at(1)), State::Present),
                (Some(at(1)), Some(at(2)), State::Missing),
                (Some(at(2)), Some(at(4)), State::Present),
                (Some(at(4)), None, State::Missing),
            ]
        );
        assert_eq!(r.spans[1].by, Some(who(1)));
        assert_eq!(r.spans[3].by, Some(who(3)));
        assert_eq!(r.changes, 3);
        assert!(r.missing_at_end);
    }

    #[test]
    fn removed_first_was_there_before_and_added_first_was_not() {
        let (key, o) = throw();
        let ns = Netns::default();
        let mut rows = Rows::default();
        rows.change(key.clone(), &ns, &o, at(5), Mark::Gone, &who(1));
        let mut other = Rows::default();
        other.change(key, &ns, &o, at(5), Mark::Add, &who(1));
        let gone = &rows.finish()[0];
        assert_eq!(
            states(gone),
            [
                (None, Some(at(5)), State::Present),
                (Some(at(5)), None, State::Gone)
            ]
        );
        // Gone with its interface is not missing.
        assert!(!gone.missing_at_end);
        let added = &other.finish()[0];
        assert_eq!(states(added), [(Some(at(5)), None, State::Present)]);
    }

    #[test]
    fn what_is_missing_at_the_end_comes_first() {
        let ns = Netns::default();
        let mut rows = Rows::default();
        let route = |dst: &str| {
            let o = Object::Route(Route {
                family: Some(Family::Inet),
                table: Some(100),
                dst: Some(dst.into()),
                ..Route::default()
            });
            (Key::new(&ns, &o), o)
        };
        let (a, oa) = route("10.0.0.0/8");
        let (b, ob) = route("10.1.0.0/16");
        rows.change(a, &ns, &oa, at(1), Mark::Add, &who(1));
        rows.change(b, &ns, &ob, at(2), Mark::Del, &who(1));
        let out = rows.finish();
        assert_eq!(out[0].object, ob);
        assert_eq!(out[1].object, oa);
    }
}
