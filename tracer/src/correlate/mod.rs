//! Correlation: turn attribution records from the eBPF programs (who asked
//! for what, and on the kprobe/fentry paths what the kernel did) and the
//! kernel's own notifications (what really changed) into one event per
//! change, in the order the kernel made the changes.
//!
//! - Tracepoint path: a request read from the sender's memory waits for the
//!   notification that describes its outcome (matched by namespace,
//!   operation, sequence number and object), or for the NLMSG_ERROR the
//!   sender received (errors have no notification). The request is in the
//!   ring buffer before the kernel acts on it, so a notification that finds
//!   no request once the ring is drained has none: it is reported at the
//!   next tick, not held back.
//! - kprobe/fentry paths: a kernel record already has the result; a
//!   successful one waits briefly for its notification to fill in details
//!   the request did not name (type, device). A notification may be read
//!   before the record of the function that sent it is written, so it waits
//!   for it briefly (`KERNEL_NOTIFY_WAIT`).
//! - Notifications nobody claims are changes made by the kernel itself
//!   (routes added for a new address or a link going up, IPv6 routes
//!   removed on link down) or by a process the tracer could not see; the
//!   last link/address action in that namespace explains them (`causes`).
//! - A notification flagged NLM_F_REPLACE replaced a route: the mirror
//!   names the old one, and the change is a `route_replace`.
//! - IPv4 routes removed by a flush have no notification: after a link goes
//!   down, an address is removed or fib_table_flush runs, the namespace is
//!   dumped again and the routes that vanished from the mirror are reported
//!   (`recovery`).
mod causes;
mod emit;
mod kernel;
mod matching;
use matching::{loosely_alike, merge, objects_match};
pub mod mirror;
mod netns_exit;
mod nexthops;
mod nh_mirror;
mod notify;
mod recovery;
mod requests;
mod route_store;
mod time;
mod waiting;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::collect::task::Task;

use crate::{
    collect::kernel_event::KernelEvent,
    event::{Cause, Family, Name, Nexthop, Op, Route, Rule, Source},
    netlink::names,
};
pub use causes::FlushCauses;
use causes::{Causes, RecentCause};
use mirror::NsMirror;
pub use netns_exit::Ended;
use recovery::Recovered;
use waiting::Waiting;

/// How long a request waits for its outcome.
const REQUEST_WAIT: Duration = Duration::from_millis(1500);
/// How long an acknowledged request waits for the notification's details.
const ACKED_WAIT: Duration = Duration::from_millis(150);
/// How long a kernel record waits for its notification.
const NOTIFY_WAIT: Duration = Duration::from_millis(400);
/// How long a notification of a change a kernel hook reports waits for
/// that hook's record (written when the function returns, just after it
/// sent the notification).
const KERNEL_NOTIFY_WAIT: Duration = Duration::from_millis(50);
/// Delay before re-dumping a namespace after a flush, so that notifications
/// already on their way are applied first.
const RESYNC_DELAY: Duration = Duration::from_millis(60);
/// Longest a re-read is put off by flushes that keep coming (what waits for
/// it is held meanwhile).
const RESYNC_MAX_DELAY: Duration = Duration::from_secs(1);
/// NLM_F_REPLACE in a notification's header: the change replaced a route.
const NLM_F_REPLACE: u16 = 0x100;
/// Most outcomes held behind an unresolved request (beyond, under
/// overload, order gives way to memory).
const BEHIND_MAX: usize = 4096;
/// NLM_F_ACK in a request: the sender asked for an ack of each message.
const NLM_F_ACK: u16 = 0x4;

/// What changed, as far as one side knows.
// A route is larger than the boxed rule (its next-hop list and nexthop id);
// boxing it would cost an allocation per route of a million-route flush.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Route(Route),
    /// Boxed: rules are several times larger than routes, and every
    /// route change moves an `Object` around several times.
    Rule(Box<Rule>),
    /// A nexthop object (boxed for the same reason).
    Nexthop(Box<Nexthop>),
}

/// What the correlator knows about a change beyond its fields, for the
/// event's `note` (worded on the output side, `enrich::notes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// Made by the kernel after `cause` by the process named.
    KernelAfter(Cause),
    /// Made by the kernel; nothing seen explains it.
    Unexplained,
    /// A request made it, one the tracer did not see.
    UnseenRequest { seq: u32, portid: u32 },
    /// A request that got no acknowledgement and no notification.
    NoOutcome { watched: bool },
    /// Removed without a notification; found by re-reading the table after
    /// a flush the cause explains.
    Flushed,
    /// Removed without a notification; found by re-reading, and nothing
    /// seen explains it.
    FlushedUnexplained,
    /// Its notification was dropped (socket overflow); found by re-reading.
    Recovered,
    /// Acknowledged in a namespace not watched yet: the change as requested.
    UnwatchedAcked,
    /// Removed with its namespace, which went away; what ended it.
    NamespaceGone(Ended),
    /// Removed or changed by the kernel with nexthop object `id`, which
    /// this process deleted (`deleted`) or replaced.
    WithNexthop { id: u32, deleted: bool },
}

/// A change ready for enrichment and output: the process is still the raw
/// kernel-side task; `enrich::present` turns it into an `Event`.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The kernel's time of the change (the record's), if a record saw it.
    pub ts_boot_ns: Option<u64>,
    /// When the notification describing it was read, for changes no record
    /// saw (their time is that of the notification, not of the report).
    pub seen: Option<Instant>,
    pub source: Source,
    pub op: Op,
    pub netns: u32,
    pub who: Option<Task>,
    pub object: Object,
    /// For an addition that replaced a route or a nexthop object: the one
    /// replaced.
    pub replaced: Option<Object>,
    /// With cause `nexthop_del`/`nexthop_replace`: the object whose
    /// deletion or replacement made this change.
    pub cause_nhid: Option<u32>,
    pub result: Option<Name>,
    pub cause: Option<Cause>,
    pub nl_seq: Option<u32>,
    pub note: Option<Note>,
    /// For a request's outcome: its place in the arrival order of waiting
    /// changes (None: it never waited, so it is the newest).
    order: Option<u64>,
}

impl Outcome {
    fn new(source: Source, op: Op, netns: u32, object: Object) -> Self {
        Outcome {
            ts_boot_ns: None,
            seen: None,
            source,
            op,
            netns,
            who: None,
            object,
            replaced: None,
            cause_nhid: None,
            result: None,
            cause: None,
            nl_seq: None,
            note: None,
            order: None,
        }
    }
}

/// The result of a change the kernel made.
fn ok() -> Option<Name> {
    Some(names::errno_name(0))
}

struct Pending {
    deadline: Instant,
    source: Source,
    op: Op,
    netns: u32,
    who: Task,
    object: Object,
    seq: u32,
    /// From the kernel (kprobe/fentry) rather than a request read at a syscall.
    from_kernel: bool,
    /// The result the kernel returned or the ack said, if known.
    result: Option<i32>,
    /// A request that asked for an ack (NLM_F_ACK).
    wants_ack: bool,
    /// Its namespace had no mirror (was not watched yet) when it came: no
    /// notification will complete it.
    unwatched: bool,
}

impl Pending {
    /// The outcome of a waiting change; `note_obj` is the notification that
    /// completed it, if one did.
    fn outcome(
        p: Pending,
        note_obj: Option<Object>,
        result: Option<i32>,
        seq: Option<u32>,
    ) -> Outcome {
        let object = match note_obj {
            Some(n) => merge(p.object, n),
            None => p.object,
        };
        let mut o = Outcome::new(p.source, p.op, p.netns, object);
        o.who = Some(p.who);
        o.ts_boot_ns = Some(p.who.ts_ns);
        o.result = result.map(names::errno_name);
        o.nl_seq = seq;
        // A kernel record with no request (seq 0) waits for its cause.
        if p.from_kernel && p.seq == 0 {
            o.cause = Some(Cause::Unknown);
        }
        o
    }
}

struct Orphan {
    deadline: Instant,
    netns: u32,
    op: Op,
    object: Object,
    seq: u32,
    /// The requester's netlink port id, as the notification carries it.
    portid: u32,
    replaced: Option<Object>,
    seen: Instant,
    /// Waiting for a kernel hook's record from a sender's syscall: the wait
    /// goes on while the sender lives, until then (`sender_busy`).
    sender_until: Option<Instant>,
}

struct ResyncPlan {
    due: Instant,
    /// When the first flush of this plan was seen.
    first: Instant,
    causes: FlushCauses,
}

/// The correlation state machine. Time is passed in, so it is testable.
pub struct Engine {
    /// Whether requests read at syscalls are the attribution source for
    /// routes (IPv4 and IPv6 separately) and rules: false when a kernel hook
    /// reports them instead.
    requests_for: RequestScope,
    /// Requests read at syscalls are indexed by sequence number; kernel
    /// records (whose notification may carry seq 0) are not.
    pending: Waiting<Pending>,
    /// Notifications waiting for their request, indexed by sequence number.
    orphans: Waiting<Orphan>,
    mirrors: HashMap<u32, NsMirror>,
    causes: Causes,
    resyncs: HashMap<u32, ResyncPlan>,
    /// Per namespace, after a notification overflow: what the re-read found
    /// gone, until every input that may still name it has been read.
    recovered: HashMap<u32, Recovered>,
    /// Acks still to come for requests already reported from their
    /// notification, by (pid, sequence number): the kernel answers the
    /// messages of a datagram in order, so the next ack of that pair
    /// belongs to one of them, not to a request still waiting.
    acks_due: HashMap<(u32, u32), u32>,
    /// Outcomes of a sender's requests that wait for an earlier request of
    /// the same sender, still unresolved (a datagram's failed message is
    /// known from its ack, read after the next messages' notifications).
    behind: Vec<Outcome>,
    /// The last IPv6 route records of kernel hooks, by (tid, sequence
    /// number, namespace, addition, table, prefix, metric): a multipath
    /// request's sibling records are recognised by these.
    siblings: std::collections::VecDeque<kernel::SiblingKey>,
    /// What the kernel will still say about consequences of nexthop
    /// changes already reported (`nexthops`).
    nh_expected: HashMap<u32, nexthops::Expected>,
    /// Consequences of nexthop changes, waiting for their outcome.
    nh_after: nexthops::After,
    /// Per namespace, outcomes that came after a flush whose re-read is
    /// still to run: the removals it finds come first (the kernel made
    /// them first), then these.
    held: HashMap<u32, Vec<Outcome>>,
    out: Vec<Outcome>,
    /// A change came from a namespace with no mirror (not watched yet):
    /// the session rescans the namespaces at once rather than at its tick.
    unwatched_seen: bool,
    /// Whether a process (by pid) is still alive (`set_sender_check`).
    sender_alive: fn(u32) -> bool,
    /// The last unmounts: one may have ended a namespace (`netns_exit`).
    unmounts: netns_exit::Unmounts,
    /// Per watched namespace, when its notifications were last all read
    /// (`notifications_read`; None: not since it was watched). A change
    /// waiting for its notification expires only once its namespace was
    /// read past its deadline. Namespaces not here do not hold waits.
    read_to: HashMap<u32, Option<Instant>>,
}

/// Which changes the tracepoint requests attribute (the others come from
/// kernel hooks).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestScope {
    pub route4_add: bool,
    pub route4_del: bool,
    pub route6_add: bool,
    pub route6_del: bool,
    pub rule_add: bool,
    pub rule_del: bool,
    /// Nexthop objects' additions (and replacements) and deletions: from
    /// requests (true) or from the rtm_new_nexthop/rtm_del_nexthop hooks.
    pub nexthop_add: bool,
    pub nexthop_del: bool,
    /// IPv4 flushes are found from link/address notifications (true) or from
    /// the fib_table_flush hook (false).
    pub flush_from_notifications: bool,
}

impl RequestScope {
    /// Every change attributed from requests (the tracepoint path).
    #[cfg(test)]
    pub fn all() -> Self {
        RequestScope {
            route4_add: true,
            route4_del: true,
            route6_add: true,
            route6_del: true,
            rule_add: true,
            rule_del: true,
            nexthop_add: true,
            nexthop_del: true,
            flush_from_notifications: true,
        }
    }
}

impl Engine {
    pub fn new(requests_for: RequestScope) -> Self {
        Engine {
            requests_for,
            pending: Waiting::default(),
            orphans: Waiting::default(),
            mirrors: HashMap::new(),
            causes: Causes::default(),
            resyncs: HashMap::new(),
            recovered: HashMap::new(),
            held: HashMap::new(),
            nh_expected: HashMap::new(),
            nh_after: HashMap::new(),
            acks_due: HashMap::new(),
            behind: Vec::new(),
            siblings: std::collections::VecDeque::new(),
            out: Vec::new(),
            unwatched_seen: false,
            sender_alive: |_| false,
            unmounts: Default::default(),
            read_to: HashMap::new(),
        }
    }

    /// How to tell whether a sender (by the port id its notifications
    /// carry, usually its pid) is still alive: while it is, a notification
    /// of its change waits for the kernel hook's record (`sender_busy`).
    pub fn set_sender_check(&mut self, alive: fn(u32) -> bool) {
        self.sender_alive = alive;
    }

    /// The mirror of a namespace (created empty if unknown).
    pub fn mirror(&mut self, netns: u32) -> &mut NsMirror {
        self.mirrors.entry(netns).or_default()
    }

    /// The mirror of a namespace, if it is followed.
    pub fn mirror_of(&self, netns: u32) -> Option<&NsMirror> {
        self.mirrors.get(&netns)
    }

    /// Whether a change came from a namespace not watched since the last
    /// call.
    pub fn take_unwatched_seen(&mut self) -> bool {
        std::mem::take(&mut self.unwatched_seen)
    }

    /// Notes whether `netns` is watched (has a mirror) for a change that
    /// comes from it now.
    fn watched(&mut self, netns: u32) -> bool {
        let w = self.mirrors.contains_key(&netns);
        self.unwatched_seen |= !w;
        w
    }

    /// Outcomes ready for output, in order.
    pub fn take_outcomes(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.out)
    }

    /// Requests (and kernel records) waiting for their notification.
    pub fn waiting_requests(&self) -> usize {
        self.pending.len()
    }

    /// Notifications waiting for their request.
    pub fn waiting_notifications(&self) -> usize {
        self.orphans.len()
    }

    /// Outcomes held behind their namespace's re-read.
    pub fn held_for_reread(&self) -> usize {
        self.held.values().map(Vec::len).sum()
    }

    /// Number of changes waiting for their other half.
    #[cfg(test)]
    pub fn backlog(&self) -> usize {
        self.pending.len() + self.orphans.len()
    }

    fn scoped(&self, op: Op, object: &Object) -> bool {
        let s = &self.requests_for;
        match (object, op) {
            (Object::Rule(_), Op::Add) => s.rule_add,
            (Object::Rule(_), Op::Del) => s.rule_del,
            (Object::Nexthop(_), Op::Add) => s.nexthop_add,
            (Object::Nexthop(_), Op::Del) => s.nexthop_del,
            (Object::Route(r), op) => match (r.family, op) {
                (Some(Family::Inet6), Op::Add) => s.route6_add,
                (Some(Family::Inet6), Op::Del) => s.route6_del,
                (_, Op::Add) => s.route4_add,
                (_, Op::Del) => s.route4_del,
            },
        }
    }

    /// A record from the eBPF programs.
    pub fn kernel_event(&mut self, ev: KernelEvent, now: Instant) {
        match ev {
            KernelEvent::Request(copy) => self.request(copy, now),
            KernelEvent::Ack {
                task, error, seq, ..
            } => self.ack(&task, error, seq, now),
            KernelEvent::Rule(copy) => self.kernel_rule(copy, now),
            KernelEvent::Route(r) => self.kernel_route(r, now),
            KernelEvent::Flush(f) => {
                if f.removed > 0 {
                    // The flush record is the observation; the cause says why.
                    let source = f.task.source;
                    let mut cause = self.causes.for_task(&f.task, Op::Del, source, now);
                    cause.source = source;
                    self.plan_resync(f.task.netns, Some(cause), now);
                }
            }
            KernelEvent::Unmount { task, path } => self.unmount(task, path, now),
            KernelEvent::Exec { .. } | KernelEvent::Packet(_) | KernelEvent::Lookup(_) => {}
        }
    }

    /// A flush in `netns`: re-read its routes `RESYNC_DELAY` after it. A
    /// flush seen while an earlier one's re-read is planned puts the re-read
    /// off to `RESYNC_DELAY` after it (at most `RESYNC_MAX_DELAY` after the
    /// first): the syscall that flushed is still running, and the removals
    /// it announces (a link going down takes its IPv6 routes with a
    /// notification each, after the IPv4 flush) are not read yet; a re-read
    /// before them would report those routes as silently removed, then their
    /// notifications again.
    fn plan_resync(&mut self, netns: u32, cause: Option<RecentCause>, now: Instant) {
        let plan = self.resyncs.entry(netns).or_insert(ResyncPlan {
            due: now + RESYNC_DELAY,
            first: now,
            causes: FlushCauses::default(),
        });
        plan.due = plan
            .due
            .max(now + RESYNC_DELAY)
            .min(plan.first + RESYNC_MAX_DELAY);
        if let Some(c) = cause {
            plan.causes.add(c);
        }
    }
}

/// What a notification says besides its object.
struct Notified {
    netns: u32,
    op: Op,
    seq: u32,
    portid: u32,
    replaced: Option<Object>,
}

/// A netlink sequence number, where 0 means "none".
fn nonzero(seq: u32) -> Option<u32> {
    (seq != 0).then_some(seq)
}

#[cfg(test)]
mod flush_tests;
#[cfg(test)]
mod hook_order_tests;
#[cfg(test)]
mod nexthops_tests;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod pairing_tests;
#[cfg(test)]
mod peer_tests;
#[cfg(test)]
mod read_to_tests;
#[cfg(test)]
mod sender_tests;
