//! The bodies of the events that are not changes: loops (`loop`,
//! `loop_summary`, `loop_end`), the state snapshot, journal health, the
//! guard's reports and repairs, and namespaces coming and going.
use serde::{Deserialize, Serialize};

use super::{Event, Family, Name, Netns, Route, Rule};

/// One packet of a loop, as the IP and transport headers say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PacketBrief {
    pub src: String,
    pub dst: String,
    /// "icmp", "ipv6-icmp", "tcp", "udp", or the protocol number.
    pub proto: String,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification (null for IPv6).
    pub id: Option<u16>,
    /// IP total length.
    pub len: u32,
    pub icmp_id: Option<u16>,
    pub icmp_seq: Option<u16>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// One FIB table consulted for a looping packet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableTry {
    pub table: u32,
    /// Null on a match, else the kernel's error name ("EAGAIN": no match or
    /// a throw route, so the next rule was tried).
    pub err: Option<String>,
}

/// The routing decision that sent a packet back out of the interface it
/// came in on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopLookup {
    pub table: Option<u32>,
    pub table_name: Option<String>,
    /// The first rule that selects the packet and points at `table`.
    pub rule_priority: Option<u32>,
    /// The matching route, `ip route`-style ("default dev tailscale0").
    pub route: Option<String>,
    pub result_dev: Option<String>,
    /// Every table lookup seen for the packet, in order (empty when the FIB
    /// lookup tracepoints are unavailable).
    pub tables_tried: Vec<TableTry>,
}

/// A forwarding loop on a watched interface (`loop`, `loop_summary` and
/// `loop_end` share this body).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoopReport {
    pub netns: Netns,
    pub iface: String,
    pub family: Family,
    /// The packet as received.
    pub original: PacketBrief,
    /// The same packet sent back out of the interface.
    pub looped: PacketBrief,
    /// Whether the looped copy's source is one of the router's own addresses.
    pub snat: bool,
    /// Looped packets of this flow so far.
    pub packets: u64,
    /// Looped packets since the previous event about this flow.
    pub new_packets: u64,
    /// The lowest TTL or hop limit of the flow's looped packets so far
    /// (below `looped.ttl` when the loop makes several passes).
    pub lowest_ttl: u8,
    /// ICMP time-exceeded messages seen for this flow.
    pub ttl_exceeded: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub lookup: Option<LoopLookup>,
    /// The most recent change seen in this session that made the looping
    /// route the chosen one (route_del, route_add, route_replace, rule_add
    /// or rule_del), as its own event, or null.
    pub suspect: Option<Box<Event>>,
    pub advice: String,
}

/// One rule or route present when a recording started (`snapshot`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateEntry {
    pub netns: Netns,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
}

/// The end of one namespace's snapshot (`snapshot_end`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEnd {
    pub netns: Netns,
    pub rules: u64,
    pub routes: u64,
}

/// A namespace the tracer started watching after `ready` (`netns_new`),
/// or one that is gone (`netns_gone`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceSeen {
    pub netns: Netns,
}

/// The journal could not be written, or can be again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalHealth {
    /// The journal file concerned.
    pub path: String,
    /// The error (`journal_error`), or null (`journal_resumed`).
    pub error: Option<String>,
    /// Events that could not be kept while writing failed (`journal_resumed`).
    pub dropped: u64,
}

/// An expectation of `tracer guard` broken past its grace period, or back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuardReport {
    /// The expectation as the operator wrote it (or as taken from the state).
    pub expectation: String,
    pub netns: Netns,
    /// When it broke (the removal's time, or the start of the guard).
    pub since: String,
    pub grace_secs: f64,
    /// The change that broke it (`guard_violation`) or restored it
    /// (`guard_restored`), as its own event, or null when none was seen
    /// (it was already missing at start).
    pub change: Option<Box<Event>>,
}

/// What became of an `--on-violation` command.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuardAction {
    pub expectation: String,
    pub command: String,
    /// Exit status, or null when it was killed by a signal or did not start.
    pub exit_code: Option<i32>,
    /// Why it did not run or did not finish, or null.
    pub error: Option<String>,
    /// The first bytes of its standard output and error.
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    /// Violations since the previous run that were not acted on because of
    /// the rate limit.
    pub suppressed: u64,
}

/// What `tracer guard --repair` did about a broken expectation: a repair
/// (`guard_repair`), a repair that waits for its device
/// (`guard_repair_waiting`), or the end of repairs of an object that keeps
/// being removed (`guard_repair_gave_up`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuardRepair {
    pub expectation: String,
    pub netns: Netns,
    /// The rule put back (or that would be), as the removal reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// The route put back (or that would be), as the removal reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// "ok" or the kernel's error name; null when no request was sent
    /// (dry run, waiting, gave up).
    pub result: Option<Name>,
    /// The repair's number among this object's repairs within the window
    /// (on `guard_repair_gave_up`: the repairs made within it).
    pub attempt: u32,
    /// `--repair-limit` and its window.
    pub limit: u32,
    pub window_secs: f64,
    /// `--dry-run`: nothing was sent.
    pub dry_run: bool,
    /// Netlink sequence number of the request, or null.
    pub nl_seq: Option<u32>,
    /// Milliseconds from the grace period's end to the kernel's answer, or
    /// null when no request was sent.
    pub ms_after_grace: Option<f64>,
    /// `guard_repair_waiting`: the device the route needs; else null.
    pub waiting_for: Option<String>,
    /// The removal undone (or that keeps coming back), as its own event.
    pub removal: Box<Event>,
}

/// `SIGHUP`: the expectations read again (`guard_reloaded`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuardReload {
    /// Expectations now guarded that were not before.
    pub added: Vec<String>,
    /// Expectations no longer guarded.
    pub removed: Vec<String>,
    /// How many expectations are guarded now (per namespace).
    pub expectations: u64,
    /// Why the reload failed (the expectations are then unchanged), or null.
    pub error: Option<String>,
}
