//! The events `tracer` reports: the JSON contract (docs/events.md describes
//! it; `schema_emitted_tests` and `schema_doc_tests` keep the two in step).
//!
//! Events are built once by collection and formatted later by `output`, so
//! text, JSON and files all show the same facts. The types that make up
//! change, snapshot, loop and lost events also deserialize: `journal::read`
//! reads journals back into them.
use std::{net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

mod bodies;
mod host;
mod identity;
mod nexthop;
pub use bodies::*;
pub use host::Host;
pub use identity::RouteId;
pub use nexthop::*;

/// Mechanism that produced an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Fentry,
    Kprobe,
    #[default]
    Tracepoint,
    Netlink,
    /// tc programs on a watched interface (tcx or classic tc): the packet
    /// path's events on such an interface.
    Tc,
    /// Produced by the tracer itself (journal health, guard).
    Tracer,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Fentry => "fentry",
            Source::Kprobe => "kprobe",
            Source::Tracepoint => "tracepoint",
            Source::Netlink => "netlink",
            Source::Tc => "tc",
            Source::Tracer => "tracer",
        }
    }
}

/// Whether a change added or removed something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Add,
    Del,
}

/// The process behind a change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub ppid: Option<u32>,
    pub parent_comm: Option<String>,
    pub exe: Option<String>,
    pub uid: u32,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    /// The process is this tracer itself: the change is a repair of
    /// `tracer guard --repair` (absent otherwise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
}

/// The kernel truncates command names (`comm`) to 15 bytes.
const COMM_LEN: usize = 15;

/// Whether a process's kernel `comm` is the command `want`: equal, or its
/// 15-byte truncation (`--comm systemd-networkd` matches
/// `systemd-network`). Shared by `watch --comm` and `report --comm`.
pub fn comm_matches(comm: &str, want: &str) -> bool {
    comm == want || (comm.len() == COMM_LEN && want.starts_with(comm))
}

/// A network namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Netns {
    pub inode: Option<u32>,
    pub name: Option<String>,
}

/// Address family as the JSON contract names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn from_af(af: u8) -> Option<Family> {
        match af {
            tracer_common::af::INET => Some(Family::Inet),
            tracer_common::af::INET6 => Some(Family::Inet6),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
    /// The default route's prefix in this family.
    pub fn any(self) -> &'static str {
        match self {
            Family::Inet => "0.0.0.0/0",
            Family::Inet6 => "::/0",
        }
    }
}

impl Route {
    /// Names the devices the route gave only by interface index (its own
    /// and its next hops'), with `name` (a mirror's or a dump's links).
    pub fn name_devs(&mut self, name: impl Fn(u32) -> Option<String>) {
        if self.dev.is_none() {
            self.dev = self.ifindex.and_then(&name);
        }
        for h in &mut self.nexthops {
            if h.dev.is_none() {
                h.dev = h.ifindex.and_then(&name);
            }
        }
    }
}

/// A policy routing rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub family: Option<Family>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub table_name: Option<String>,
    /// "table", "goto", "nop", "blackhole", "unreachable", "prohibit".
    pub action: Option<String>,
    pub goto: Option<u32>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub uid_range: Option<String>,
    pub ipproto: Option<u8>,
    pub sport: Option<String>,
    pub dport: Option<String>,
    pub tos: Option<u8>,
    pub suppress_prefixlen: Option<u32>,
    pub invert: bool,
    pub protocol: Option<String>,
}

/// A route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub family: Option<Family>,
    pub table: Option<u32>,
    pub table_name: Option<String>,
    /// "unicast", "throw", "blackhole", "unreachable", "prohibit", "local", ...
    #[serde(rename = "type")]
    pub rtype: Option<Name>,
    /// "192.168.1.0/24", "::/0" style.
    pub dst: Option<String>,
    pub gateway: Option<String>,
    pub dev: Option<String>,
    /// Interface index of `dev` (useful when the device is gone).
    pub ifindex: Option<u32>,
    pub metric: Option<u32>,
    pub protocol: Option<Name>,
    pub scope: Option<Name>,
    /// The next hops of a multipath route (`nexthop via A weight 1 nexthop
    /// via B weight 2`), in the kernel's order; absent for a route with one
    /// next hop (whose `gateway` and `dev` say it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
    /// The nexthop object the route uses (`nhid N`), when it uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nhid: Option<u32>,
}

/// One next hop of a multipath route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    pub gateway: Option<String>,
    pub dev: Option<String>,
    pub ifindex: Option<u32>,
    /// As `ip route` shows it: the kernel's rtnh_hops plus one.
    pub weight: u16,
    /// RTNH_F_* names: "dead", "pervasive", "onlink", "offload",
    /// "linkdown", "unresolved", "trap".
    #[serde(default)]
    pub flags: Vec<String>,
}

/// A name of an rtnetlink number ("unicast", "boot", "link"): borrowed for
/// the known ones, so a route costs no allocation for them.
pub type Name = std::borrow::Cow<'static, str>;

/// What kind of change an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    RuleAdd,
    RuleDel,
    RouteAdd,
    RouteDel,
    RouteReplace,
    NexthopAdd,
    NexthopDel,
    NexthopReplace,
    Lost,
    Ready,
    Loop,
    LoopSummary,
    LoopEnd,
    Snapshot,
    SnapshotEnd,
    JournalError,
    JournalResumed,
    GuardViolation,
    GuardRestored,
    GuardAction,
    GuardRepair,
    GuardRepairWaiting,
    GuardRepairGaveUp,
    GuardReloaded,
    NetnsNew,
    NetnsGone,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RuleAdd => "rule_add",
            Kind::RuleDel => "rule_del",
            Kind::RouteAdd => "route_add",
            Kind::RouteDel => "route_del",
            Kind::RouteReplace => "route_replace",
            Kind::NexthopAdd => "nexthop_add",
            Kind::NexthopDel => "nexthop_del",
            Kind::NexthopReplace => "nexthop_replace",
            Kind::Lost => "lost",
            Kind::Ready => "ready",
            Kind::Loop => "loop",
            Kind::LoopSummary => "loop_summary",
            Kind::LoopEnd => "loop_end",
            Kind::Snapshot => "snapshot",
            Kind::SnapshotEnd => "snapshot_end",
            Kind::JournalError => "journal_error",
            Kind::JournalResumed => "journal_resumed",
            Kind::GuardViolation => "guard_violation",
            Kind::GuardRestored => "guard_restored",
            Kind::GuardAction => "guard_action",
            Kind::GuardRepair => "guard_repair",
            Kind::GuardRepairWaiting => "guard_repair_waiting",
            Kind::GuardRepairGaveUp => "guard_repair_gave_up",
            Kind::GuardReloaded => "guard_reloaded",
            Kind::NetnsNew => "netns_new",
            Kind::NetnsGone => "netns_gone",
        }
    }
    pub fn route(op: Op) -> Kind {
        match op {
            Op::Add => Kind::RouteAdd,
            Op::Del => Kind::RouteDel,
        }
    }
    pub fn rule(op: Op) -> Kind {
        match op {
            Op::Add => Kind::RuleAdd,
            Op::Del => Kind::RuleDel,
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why the kernel removed or added a route without a request for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    LinkDown,
    LinkDel,
    AddrDel,
    /// A nexthop object the route used was deleted (`cause_nhid`).
    NexthopDel,
    /// A nexthop object the route uses was replaced (`cause_nhid`): the
    /// route forwards elsewhere.
    NexthopReplace,
    NetnsExit,
    LinkUp,
    AddrAdd,
    /// Changed by the kernel for a reason the tracer could not tell (the
    /// event's `note` says why). Journals before 0.2 wrote "kernel".
    #[serde(alias = "kernel")]
    Unknown,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::LinkDown => "link_down",
            Cause::LinkDel => "link_del",
            Cause::AddrDel => "addr_del",
            Cause::NexthopDel => "nexthop_del",
            Cause::NexthopReplace => "nexthop_replace",
            Cause::NetnsExit => "netns_exit",
            Cause::LinkUp => "link_up",
            Cause::AddrAdd => "addr_add",
            Cause::Unknown => "unknown",
        }
    }
}

/// A rule or route change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Shared: a burst of changes by one process presents it once.
    pub process: Option<Arc<Process>>,
    pub netns: Netns,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// `nexthop_add`, `nexthop_del`, `nexthop_replace`: the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<Nexthop>,
    /// "ok" or the kernel's error name ("ESRCH"); null when the outcome is
    /// not known (see `note`). Borrowed for the known names.
    pub result: Option<Name>,
    /// Set on routes the kernel removed or added without a request for
    /// them.
    pub cause: Option<Cause>,
    /// `route_replace`: the route the new one took the place of (same
    /// table, prefix and metric), as the tracer's mirror last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Route>,
    /// `nexthop_replace`: the object as it was before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_nexthop: Option<Nexthop>,
    /// With `cause` `nexthop_del` or `nexthop_replace`: the nexthop object
    /// whose deletion or replacement changed this route or group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_nhid: Option<u32>,
    /// Netlink sequence number of the request, when there was one.
    pub nl_seq: Option<u32>,
    /// Explanation when a field could not be determined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Records lost before they reached the tracer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    /// How many records were lost since the previous `lost` event.
    pub count: u64,
    /// Where: "ring_buffer" (kernel side) or "netlink_socket" (notification
    /// socket overflow; the count is then the number of removals found by
    /// re-reading the routes, each also reported, and at least 1).
    pub location: String,
}

/// The first line of every session.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ready {
    /// Mechanism chosen for each hook.
    pub hooks: std::collections::BTreeMap<String, Source>,
    /// Kernel functions attached, by hook (empty on the tracepoint path).
    pub functions: std::collections::BTreeMap<String, String>,
    pub kernel: String,
    pub version: String,
    pub pid: u32,
    /// Network namespaces watched for notifications, by name or inode.
    pub namespaces: Vec<Netns>,
    /// The `--iface` interfaces and how their packets are seen.
    pub ifaces: Vec<WatchedIface>,
}

/// One `--iface` interface in the `ready` event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WatchedIface {
    /// As given: `IFACE` or `NETNS:IFACE`.
    pub iface: String,
    /// `"tc"` (programs on the interface itself), `"tracepoint"` (the
    /// packet tracepoints, filtered by interface), or null while the
    /// interface is not there.
    pub via: Option<&'static str>,
    /// The hook itself: `"tcx"` (tcx links, Linux 6.6+), `"clsact"`
    /// (classic tc filters under a clsact qdisc, where tcx is missing),
    /// `"tracepoint"`, or null while the interface is not there.
    pub hook: Option<&'static str>,
    /// When its programs run: `"always"`, or `"on_demand"` (tcx links
    /// attached after changes, while a loop lasts, and sampled otherwise:
    /// `--packet-programs`); null while the interface is not there.
    pub programs: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Body {
    Change(Box<Change>),
    Lost(Lost),
    Ready(Ready),
    Loop(Box<LoopReport>),
    State(Box<StateEntry>),
    SnapshotEnd(SnapshotEnd),
    Journal(JournalHealth),
    Guard(GuardReport),
    GuardAction(GuardAction),
    GuardRepair(Box<GuardRepair>),
    GuardReload(GuardReload),
    Namespace(NamespaceSeen),
}

/// One event: one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// RFC 3339, UTC, microseconds.
    pub ts: String,
    pub kind: Kind,
    pub source: Source,
    #[serde(flatten)]
    pub body: Body,
}

impl Event {
    pub fn change(&self) -> Option<&Change> {
        match &self.body {
            Body::Change(c) => Some(c),
            _ => None,
        }
    }
}

/// Format a wall-clock time as the contract wants it.
pub fn format_ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// "addr/len" for a prefix.
pub fn prefix(addr: IpAddr, len: u8) -> String {
    match addr {
        // By hand: a flush formats a million of them.
        IpAddr::V4(a) => {
            let mut s = String::with_capacity(18);
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_u8(&mut s, o);
            }
            s.push('/');
            push_u8(&mut s, len);
            s
        }
        IpAddr::V6(_) => format!("{addr}/{len}"),
    }
}

/// Appends `n` in decimal.
fn push_u8(s: &mut String, n: u8) {
    if n >= 100 {
        s.push((b'0' + n / 100) as char);
    }
    if n >= 10 {
        s.push((b'0' + n / 10 % 10) as char);
    }
    s.push((b'0' + n % 10) as char);
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn prefixes_format_like_display() {
        for (a, len) in [
            ([0, 0, 0, 0], 0),
            ([10, 1, 100, 255], 32),
            ([192, 168, 1, 0], 24),
            ([9, 99, 100, 199], 8),
        ] {
            let addr = IpAddr::V4(Ipv4Addr::from(a));
            assert_eq!(super::prefix(addr, len), format!("{addr}/{len}"));
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(super::prefix(v6, 128), "2001:db8::1/128");
    }
}
