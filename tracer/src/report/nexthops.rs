//! The nexthop deletion behind a removal: a route (or a group) the kernel
//! removed because a nexthop object it used was deleted (`cause`
//! `nexthop_del`, `cause_nhid`) is reported right after the deletion, with
//! its process. The report names that deletion: the object's id, who
//! deleted it and when, and the object as it was.
use super::{
    applied,
    identity::{Actor, NsKey},
    model::{NexthopDeletion, Time},
};
use crate::{
    event::{Cause, Change, Op},
    journal::read::{Data, Entry},
};

/// How far before a removal its nexthop's deletion is looked for: the
/// kernel removes the routes at once, the tracer reports them right after.
const LOOK_BACK_SECS: i64 = 60;

/// The deletion `c` (the removal at `seq` in `entries`) went with, when its
/// cause is a nexthop's deletion: the latest deletion of that object in its
/// namespace at or before it, else what the removal itself says (its time
/// and process; the object unknown).
pub fn deletion(entries: &[Entry], seq: usize, ts: Time, c: &Change) -> Option<NexthopDeletion> {
    if c.cause != Some(Cause::NexthopDel) {
        return None;
    }
    let id = c.cause_nhid?;
    let ns = NsKey::of(&c.netns);
    let since = ts - chrono::Duration::seconds(LOOK_BACK_SECS);
    let found = entries[..seq]
        .iter()
        .rev()
        .take_while(|e| e.ts >= since)
        .find_map(|e| match &e.data {
            Data::Change(Op::Del, d)
                if applied(d)
                    && d.nexthop.as_ref().is_some_and(|n| n.id == id)
                    && NsKey::of(&d.netns) == ns =>
            {
                Some((e.ts, d))
            }
            _ => None,
        });
    Some(match found {
        Some((ts, d)) => NexthopDeletion {
            id,
            ts,
            by: Actor::of(d.process.as_deref()),
            nexthop: d.nexthop.clone(),
        },
        None => NexthopDeletion {
            id,
            ts,
            by: Actor::of(c.process.as_deref()),
            nexthop: None,
        },
    })
}
