//! What a report says, before it is rendered as text or JSON
//! (docs/report.md describes the JSON; `doc_tests` keeps them in step).
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::identity::{Actor, Object};
use crate::{
    event::{Cause, LoopLookup, Netns, Nexthop, PacketBrief, Route},
    journal::read::Problem,
};

pub type Time = DateTime<Utc>;

pub fn ts<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::event::format_ts(*t))
}

pub fn opt_ts<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ts(t, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// The files read, in order.
    pub inputs: Vec<String>,
    #[serde(serialize_with = "opt_ts")]
    pub since: Option<Time>,
    #[serde(serialize_with = "opt_ts")]
    pub until: Option<Time>,
    /// The filters in force, as "table 52", "dst 192.168.1.0/24", ...
    pub filters: Vec<String>,
    /// Events read in the window.
    pub events: usize,
    #[serde(serialize_with = "opt_ts")]
    pub first: Option<Time>,
    #[serde(serialize_with = "opt_ts")]
    pub last: Option<Time>,
    /// The end of the window: `until` (or now, if that is earlier), else
    /// the last event. `missing` is what is missing then.
    #[serde(serialize_with = "opt_ts")]
    pub end: Option<Time>,
    /// Every namespace the events in the window mention.
    pub namespaces: Vec<Netns>,
    pub timeline: Vec<Item>,
    /// Removed in the window and not back at its end.
    pub missing: Vec<Missing>,
    /// Events in the window of kinds a report does not show, by kind.
    pub not_shown: BTreeMap<String, usize>,
    /// Lines skipped.
    pub problems: Vec<Problem>,
    /// Every rule and route that changed, as the picture draws it (not
    /// part of the JSON).
    #[serde(skip)]
    pub rows: Vec<super::chart::Row>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Session(Session),
    Snapshot(SnapshotItem),
    Episode(Episode),
    Loop(Box<LoopItem>),
    Lost(LostItem),
    Journal(JournalItem),
}

impl Item {
    pub fn ts(&self) -> Time {
        match self {
            Item::Session(s) => s.ts,
            Item::Snapshot(s) => s.ts,
            Item::Episode(e) => e.start,
            Item::Loop(l) => l.ts,
            Item::Lost(l) => l.ts,
            Item::Journal(j) => j.ts,
        }
    }
}

/// A tracer session started (`ready`).
#[derive(Debug, Serialize)]
pub struct Session {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub pid: Option<u32>,
    pub version: Option<String>,
    pub kernel: Option<String>,
    pub namespaces: Vec<Netns>,
}

/// One namespace's snapshot at the start of a recording.
#[derive(Debug, Serialize)]
pub struct SnapshotItem {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub netns: Netns,
    /// Rules and routes in it that pass the filters.
    pub rules: usize,
    pub routes: usize,
    /// Whether its `snapshot_end` was read.
    pub complete: bool,
}

/// Changes by one process (or unit) with no pause longer than the gap.
#[derive(Debug, Serialize)]
pub struct Episode {
    #[serde(serialize_with = "ts")]
    pub start: Time,
    #[serde(serialize_with = "ts")]
    pub end: Time,
    pub actor: Actor,
    pub netns: Vec<Netns>,
    pub removed: Vec<Removed>,
    pub added: Vec<Added>,
    pub failed: Vec<Failed>,
}

#[derive(Debug, Serialize)]
pub struct Removed {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub netns: Netns,
    #[serde(flatten)]
    pub object: Object,
    pub cause: Option<Cause>,
    /// With `cause` `nexthop_del`: the deletion it went with.
    pub with_nexthop: Option<NexthopDeletion>,
    pub fate: Fate,
}

/// The deletion of a nexthop object that took a route (or a group that
/// held it) with it.
#[derive(Clone, Debug, Serialize)]
pub struct NexthopDeletion {
    /// The object's id (the removal's `cause_nhid`).
    pub id: u32,
    /// When it was deleted.
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    /// Who deleted it.
    pub by: Actor,
    /// The object as deleted; None when its deletion is not in the window.
    pub nexthop: Option<Nexthop>,
}

/// What became of a removed rule or route by the end of the window.
#[derive(Clone, Debug, Serialize)]
pub struct Fate {
    pub state: FateState,
    #[serde(serialize_with = "opt_ts")]
    pub ts: Option<Time>,
    pub by: Option<Actor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FateState {
    /// Added again (`ts`, `by`).
    Restored,
    /// Not added again in the window, but in a later session's snapshot
    /// (`ts`): put back while nothing was recording, by whom is unknown.
    InSnapshot,
    /// Still absent at the end of the window.
    Missing,
    /// Removed by the kernel with its interface (`cause: link_del`) and
    /// not added again: gone with the interface, not missing.
    GoneWithInterface,
}

#[derive(Debug, Serialize)]
pub struct Added {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub netns: Netns,
    #[serde(flatten)]
    pub object: Object,
    /// The removal this addition undoes, when the object's last change was
    /// one.
    pub restores: Option<Origin>,
    /// The route (`route_replace`) or nexthop object (`nexthop_replace`)
    /// this one replaced, else None.
    pub replaces: Option<Replaced>,
}

/// What a replacement took the place of: a route object or a nexthop
/// object of events.md, as the event gives it (`old`, `old_nexthop`).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Replaced {
    Route(Route),
    Nexthop(Nexthop),
}

#[derive(Clone, Debug, Serialize)]
pub struct Origin {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub by: Actor,
}

/// A request the kernel refused (`result` is its error).
#[derive(Debug, Serialize)]
pub struct Failed {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub kind: String,
    pub netns: Netns,
    #[serde(flatten)]
    pub object: Object,
    pub result: String,
}

#[derive(Debug, Serialize)]
pub struct LoopItem {
    /// Time of the `loop` event (or of the first event seen of the flow).
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub netns: Netns,
    pub iface: String,
    pub original: PacketBrief,
    pub looped: PacketBrief,
    pub snat: bool,
    pub lookup: Option<LoopLookup>,
    pub suspect: Option<LoopSuspect>,
    pub advice: String,
    /// Looped packets by the last event of the flow in the window.
    pub packets: u64,
    pub last_seen: Option<String>,
    /// Time of its `loop_end`, or null when it had not ended.
    #[serde(serialize_with = "opt_ts")]
    pub ended: Option<Time>,
}

#[derive(Debug, Serialize)]
pub struct LoopSuspect {
    /// As the loop event gave it.
    pub ts: String,
    pub kind: String,
    pub by: Actor,
    pub netns: Netns,
    #[serde(flatten)]
    pub object: Object,
    /// What became of it, when the removal is in the window.
    pub fate: Option<Fate>,
}

impl LoopSuspect {
    /// Whether the suspect is a removal (else an addition or replacement).
    pub fn is_removal(&self) -> bool {
        self.kind.ends_with("_del")
    }

    /// What the change did: "removed", "added" or "replaced".
    pub fn verb(&self) -> &'static str {
        match self.kind.as_str() {
            k if k.ends_with("_del") => "removed",
            k if k.ends_with("_replace") => "replaced",
            _ => "added",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LostItem {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub count: u64,
    pub location: String,
}

/// The journal could not be written (`journal_error`) or could again
/// (`journal_resumed`, with the events dropped meanwhile).
#[derive(Debug, Serialize)]
pub struct JournalItem {
    #[serde(serialize_with = "ts")]
    pub ts: Time,
    pub kind: String,
    pub path: String,
    pub error: Option<String>,
    pub dropped: u64,
}

#[derive(Debug, Serialize)]
pub struct Missing {
    pub netns: Netns,
    #[serde(flatten)]
    pub object: Object,
    #[serde(serialize_with = "ts")]
    pub removed_at: Time,
    pub removed_by: Actor,
    /// Why the kernel removed it without a request, as in the event.
    pub cause: Option<Cause>,
    /// With `cause` `nexthop_del`: the deletion it went with.
    pub with_nexthop: Option<NexthopDeletion>,
}
