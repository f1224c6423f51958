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
mod matching;
pub mod mirror;
mod recovery;
mod route_store;
mod waiting;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tracer_common::EventHeader;

use crate::{
    collect::record::{NlCopy, Record, source_of},
    event::{Cause, Family, Name, Op, Route, Rule, Source},
    netlink::{
        decode::{NlItem, NlObj, decode_buffer},
        names,
    },
};
use causes::{Causes, RecentCause};
use mirror::NsMirror;
pub use recovery::NOTE_RECOVERED;
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
}

/// A change ready for enrichment and output: the process is still the raw
/// eBPF header; `crate::watch` turns it into an `Event`.
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
    pub who: Option<EventHeader>,
    pub object: Object,
    /// For an addition that replaced a route: the route replaced.
    pub replaced: Option<Route>,
    pub result: Option<Name>,
    pub cause: Option<Cause>,
    pub nl_seq: Option<u32>,
    pub note: Option<String>,
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
    who: EventHeader,
    object: Object,
    seq: u32,
    /// From the kernel (kprobe/fentry) rather than a request read at a syscall.
    from_kernel: bool,
    /// The result the kernel returned or the ack said, if known.
    result: Option<i32>,
    /// A request that asked for an ack (NLM_F_ACK).
    wants_ack: bool,
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
    replaced: Option<Route>,
    seen: Instant,
}

struct ResyncPlan {
    due: Instant,
    cause: Option<RecentCause>,
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
    siblings: std::collections::VecDeque<SiblingKey>,
    /// Per namespace, outcomes that came after a flush whose re-read is
    /// still to run: the removals it finds come first (the kernel made
    /// them first), then these.
    held: HashMap<u32, Vec<Outcome>>,
    out: Vec<Outcome>,
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
            acks_due: HashMap::new(),
            behind: Vec::new(),
            siblings: std::collections::VecDeque::new(),
            out: Vec::new(),
        }
    }

    /// The mirror of a namespace (created empty if unknown).
    pub fn mirror(&mut self, netns: u32) -> &mut NsMirror {
        self.mirrors.entry(netns).or_default()
    }

    /// The mirror of a namespace, if it is followed.
    pub fn mirror_of(&self, netns: u32) -> Option<&NsMirror> {
        self.mirrors.get(&netns)
    }

    /// Stop following a namespace (it went away).
    pub fn forget(&mut self, netns: u32) {
        self.mirrors.remove(&netns);
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
            (Object::Route(r), op) => match (r.family, op) {
                (Some(Family::Inet6), Op::Add) => s.route6_add,
                (Some(Family::Inet6), Op::Del) => s.route6_del,
                (_, Op::Add) => s.route4_add,
                (_, Op::Del) => s.route4_del,
            },
        }
    }

    /// A record from the eBPF programs.
    pub fn record(&mut self, rec: Record, now: Instant) {
        match rec {
            Record::Request(copy) => self.request(copy, now),
            Record::Ack {
                hdr, error, seq, ..
            } => self.ack(&hdr, error, seq, now),
            Record::Rule(copy) => self.kernel_rule(copy, now),
            Record::Route(r) => self.kernel_route(&r, now),
            Record::Flush(f) => {
                if f.removed > 0 {
                    // The flush record is the observation; the cause says why.
                    let source = source_of(&f.hdr);
                    let mut cause = self.causes.for_task(&f.hdr, Op::Del, source, now);
                    cause.source = source;
                    self.plan_resync(f.hdr.netns, Some(cause), now);
                }
            }
            Record::Exec { .. } | Record::Packet(_) | Record::Lookup(_) => {}
        }
    }

    fn request(&mut self, copy: NlCopy, now: Instant) {
        let (items, errors) = decode_buffer(&copy.data);
        for e in errors {
            log::warn!("request by pid {} not fully decoded: {e}", copy.hdr.pid);
        }
        let netns = copy.hdr.netns;
        for item in items {
            // Route and rule requests wait for their outcome; link and
            // address requests only explain what the kernel does next.
            let cause = match item.obj {
                NlObj::Route { op, route } => {
                    let r = Object::Route(route);
                    self.add_request_flags(&copy.hdr, netns, op, r, item.seq, item.flags, now);
                    None
                }
                NlObj::Rule { op, rule } => {
                    let r = Object::Rule(rule);
                    self.add_request_flags(&copy.hdr, netns, op, r, item.seq, item.flags, now);
                    None
                }
                NlObj::Link(l) if l.deleted => Some(Cause::LinkDel),
                NlObj::Link(l) if l.up == Some(false) => Some(Cause::LinkDown),
                NlObj::Link(l) if l.up == Some(true) => Some(Cause::LinkUp),
                NlObj::Addr { op: Op::Del, .. } => Some(Cause::AddrDel),
                NlObj::Addr { op: Op::Add, .. } => Some(Cause::AddrAdd),
                _ => None,
            };
            if let Some(cause) = cause {
                self.causes.note(
                    netns,
                    RecentCause {
                        cause,
                        who: copy.hdr,
                        source: Source::Tracepoint,
                        at: now,
                    },
                );
            }
        }
    }

    #[cfg(test)]
    fn add_request(
        &mut self,
        who: &EventHeader,
        netns: u32,
        op: Op,
        object: Object,
        seq: u32,
        now: Instant,
    ) {
        self.add_request_flags(who, netns, op, object, seq, NLM_F_ACK, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn add_request_flags(
        &mut self,
        who: &EventHeader,
        netns: u32,
        op: Op,
        object: Object,
        seq: u32,
        flags: u16,
        now: Instant,
    ) {
        if !self.scoped(op, &object) {
            return;
        }
        let wants_ack = flags & NLM_F_ACK != 0;
        // The notification may have overtaken the request (matched by
        // object, else by sequence number alone: a form read more loosely
        // than the kernel reads it).
        let found = self
            .orphans
            .first_with_seq(seq, |o| {
                o.netns == netns && o.op == op && objects_match(&object, &o.object)
            })
            .or_else(|| {
                (seq != 0)
                    .then(|| {
                        self.orphans.first_with_seq(seq, |o| {
                            o.netns == netns
                                && o.op == op
                                && o.portid != 0
                                && std::mem::discriminant(&object)
                                    == std::mem::discriminant(&o.object)
                        })
                    })
                    .flatten()
            });
        if let Some(id) = found {
            if wants_ack {
                *self.acks_due.entry((who.pid, seq)).or_default() += 1;
            }
            let o = self.orphans.take(id).expect("id just found");
            let mut out = Outcome::new(Source::Tracepoint, op, netns, merge(object, o.object));
            out.who = Some(*who);
            out.ts_boot_ns = Some(who.ts_ns);
            out.result = ok();
            out.nl_seq = Some(seq);
            out.replaced = o.replaced;
            self.emit(out);
            return;
        }
        self.pending.push(
            seq,
            true,
            Pending {
                deadline: now + REQUEST_WAIT,
                source: Source::Tracepoint,
                op,
                netns,
                who: *who,
                object,
                seq,
                from_kernel: false,
                result: None,
                wants_ack,
            },
        );
    }

    fn ack(&mut self, hdr: &EventHeader, error: i32, seq: u32, now: Instant) {
        // The ack of a request already reported from its notification.
        if let Some(n) = self.acks_due.get_mut(&(hdr.pid, seq)) {
            *n -= 1;
            if *n == 0 {
                self.acks_due.remove(&(hdr.pid, seq));
            }
            if error == 0 {
                return;
            }
        }
        let Some(id) = self.pending.first_with_seq(seq, |p| {
            !p.from_kernel && p.who.pid == hdr.pid && p.result.is_none()
        }) else {
            return;
        };
        if error != 0 {
            // Failed requests change nothing: no notification will come.
            let p = self.pending.take(id).expect("id just found");
            let mut o = Pending::outcome(p, None, Some(error), Some(seq));
            o.order = Some(id);
            self.emit(o);
            // A batch shares one sequence number; the error answers the first
            // failing message only, so siblings keep waiting.
        } else {
            let p = self.pending.get_mut(id).expect("id just found");
            p.result = Some(0);
            p.deadline = p.deadline.min(now + ACKED_WAIT);
        }
    }

    fn kernel_rule(&mut self, copy: NlCopy, now: Instant) {
        let (items, errors) = decode_buffer(&copy.data);
        for e in errors {
            log::warn!("rule seen by a kernel hook not fully decoded: {e}");
        }
        let source = source_of(&copy.hdr);
        for item in items {
            if let NlObj::Rule { op, rule } = item.obj {
                self.kernel_change(
                    &copy.hdr,
                    source,
                    op,
                    Object::Rule(rule),
                    item.seq,
                    copy.ret,
                    now,
                );
            }
        }
    }

    fn kernel_route(&mut self, r: &tracer_common::RouteEvent, now: Instant) {
        let op = if r.op == tracer_common::op::ADD {
            Op::Add
        } else {
            Op::Del
        };
        let route = route_from_kernel(r);
        self.kernel_change(
            &r.hdr,
            source_of(&r.hdr),
            op,
            Object::Route(route),
            r.nl_seq,
            r.ret,
            now,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn kernel_change(
        &mut self,
        hdr: &EventHeader,
        source: Source,
        op: Op,
        object: Object,
        seq: u32,
        ret: i32,
        now: Instant,
    ) {
        let netns = hdr.netns;
        let p = Pending {
            deadline: now + NOTIFY_WAIT,
            source,
            op,
            netns,
            who: *hdr,
            object,
            seq,
            from_kernel: true,
            result: Some(ret),
            wants_ack: false,
        };
        if ret != 0 {
            let o = Pending::outcome(p, None, Some(ret), nonzero(seq));
            self.emit(o);
            return;
        }
        // IPv6 keeps each next hop of a multipath route as a route of its
        // own: one request runs fib6_add (or fib6_del) once per next hop,
        // and one notification lists them all. The first record stands for
        // the request; its siblings are not changes of their own.
        if let Object::Route(r) = &p.object
            && r.family == Some(Family::Inet6)
            && seq != 0
        {
            let key = (
                hdr.tid,
                seq,
                netns,
                op == Op::Add,
                r.table,
                r.dst.clone(),
                r.metric,
            );
            if self.siblings.contains(&key) {
                return;
            }
            if self.siblings.len() >= 64 {
                self.siblings.pop_front();
            }
            self.siblings.push_back(key);
        }
        // A scan: kernel records match notifications on the object alone.
        if let Some(id) = self
            .orphans
            .first(|o| o.netns == netns && o.op == op && objects_match(&p.object, &o.object))
        {
            let o = self.orphans.take(id).expect("id just found");
            let mut out = Pending::outcome(p, Some(o.object), Some(0), nonzero(seq));
            out.replaced = o.replaced;
            let out = self.with_kernel_cause(out, now);
            self.emit(out);
            return;
        }
        self.pending.push(seq, false, p);
    }

    /// A change a kernel hook saw with no netlink request behind it (seq 0
    /// and not from a netlink handler) gets its cause and note.
    fn with_kernel_cause(&self, mut o: Outcome, now: Instant) -> Outcome {
        if o.cause.is_none() {
            return o;
        }
        let Some(who) = o.who else { return o };
        let c = self.causes.for_task(&who, o.op, o.source, now);
        o.cause = Some(c.cause);
        if o.note.is_none() {
            o.note = Some(match c.cause {
                Cause::Unknown => causes::unexplained(o.op),
                Cause::NetnsExit => return o,
                cause => causes::after(cause, o.op),
            });
        }
        o
    }

    /// A notification read from a watched namespace.
    pub fn notification(&mut self, netns: u32, item: NlItem, now: Instant) {
        if let NlObj::Route { op: Op::Del, route } = &item.obj
            && self.already_recovered(netns, route)
        {
            return;
        }
        // The route a replacement took the place of, before the mirror
        // forgets it.
        let replaced = match &item.obj {
            NlObj::Route { op: Op::Add, route } if item.flags & NLM_F_REPLACE != 0 => {
                self.mirror(netns).replaced_by(route)
            }
            _ => None,
        };
        let prev_up = self.mirror(netns).apply(&item);
        let (seq, portid) = (item.seq, item.portid);
        match item.obj {
            NlObj::Route { op, route } => {
                let n = Notified {
                    netns,
                    op,
                    seq,
                    portid,
                    replaced,
                };
                self.notified_change(n, Object::Route(route), now)
            }
            NlObj::Rule { op, rule } => {
                let n = Notified {
                    netns,
                    op,
                    seq,
                    portid,
                    replaced: None,
                };
                self.notified_change(n, Object::Rule(rule), now)
            }
            NlObj::Link(l) => {
                let went_down = l.deleted || (prev_up == Some(true) && l.up == Some(false));
                if went_down && self.requests_for.flush_from_notifications {
                    let cause = self.causes.recent(netns, Op::Del, now);
                    self.plan_resync(netns, cause, now);
                }
            }
            NlObj::Addr { op: Op::Del, .. } if self.requests_for.flush_from_notifications => {
                let cause = self
                    .causes
                    .recent(netns, Op::Del, now)
                    .filter(|c| c.cause == Cause::AddrDel);
                self.plan_resync(netns, cause, now);
            }
            _ => {}
        }
    }

    fn notified_change(&mut self, n: Notified, object: Object, now: Instant) {
        let Notified { netns, op, seq, .. } = n;
        // Requests read at syscalls match on sequence number and object;
        // kernel records (whose seq is that of the request, or 0) on object.
        let same =
            |p: &Pending| p.netns == netns && p.op == op && objects_match(&p.object, &object);
        let request = self.pending.first_with_seq(seq, same);
        let kernel = self
            .pending
            .first_unindexed(|p| same(p) && (p.seq == 0 || seq == 0 || p.seq == seq));
        // The older of the two, as if they waited in one queue.
        let found = match (request, kernel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A request with the notification's sequence number whose object
        // the tracer read differently (a form it decodes more loosely than
        // the kernel): the same namespace, operation and kind of object.
        let found = found.or_else(|| {
            (seq != 0)
                .then(|| {
                    self.pending.first_with_seq(seq, |p| {
                        !p.from_kernel
                            && p.netns == netns
                            && p.op == op
                            && std::mem::discriminant(&p.object) == std::mem::discriminant(&object)
                    })
                })
                .flatten()
        });
        if let Some(id) = found {
            let p = self.pending.take(id).expect("id just found");
            if p.wants_ack && p.result.is_none() {
                if self.acks_due.len() > 4096 {
                    self.acks_due.clear();
                }
                *self.acks_due.entry((p.who.pid, p.seq)).or_default() += 1;
            }
            let mut o = Pending::outcome(p, Some(object), Some(0), nonzero(seq));
            o.order = Some(id);
            o.replaced = n.replaced;
            let o = self.with_kernel_cause(o, now);
            self.emit(o);
            return;
        }
        // Requests are in the ring buffer before the kernel acts on them,
        // and the tick runs only once it is drained: a change the requests
        // attribute waits for nothing. A kernel hook's record is written
        // just after the notification is sent, so that waits briefly.
        let wait = if self.scoped(op, &object) {
            Duration::ZERO
        } else {
            KERNEL_NOTIFY_WAIT
        };
        self.orphans.push(
            seq,
            true,
            Orphan {
                deadline: now + wait,
                netns,
                op,
                object,
                seq,
                portid: n.portid,
                replaced: n.replaced,
                seen: now,
            },
        );
    }

    fn plan_resync(&mut self, netns: u32, cause: Option<RecentCause>, now: Instant) {
        let plan = self.resyncs.entry(netns).or_insert(ResyncPlan {
            due: now + RESYNC_DELAY,
            cause: None,
        });
        if cause.is_some() {
            plan.cause = cause;
        }
    }

    /// Advance time: expire waits and start due resyncs.
    pub fn tick(&mut self, now: Instant) -> Vec<(u32, Option<FlushCause>)> {
        while let Some((id, _)) = self.pending.front().filter(|(_, p)| p.deadline <= now) {
            let p = self.pending.take(id).expect("front exists");
            let note = match (p.from_kernel, p.result) {
                (true, _) => None,
                (false, Some(_)) => None,
                (false, None) => Some(if self.mirrors.contains_key(&p.netns) {
                    "no acknowledgement and no notification seen: the request changed nothing or its outcome was lost".to_string()
                } else {
                    "outcome unknown: the namespace is not watched (no /run/netns name) and no acknowledgement was seen".to_string()
                }),
            };
            let (result, seq) = (p.result, p.seq);
            let mut o = Pending::outcome(p, None, result, nonzero(seq));
            o.order = Some(id);
            o.note = note;
            let o = self.with_kernel_cause(o, now);
            self.emit(o);
        }
        while let Some((id, _)) = self.orphans.front().filter(|(_, o)| o.deadline <= now) {
            let o = self.orphans.take(id).expect("front exists");
            let out = self.unclaimed(o, now);
            self.emit(out);
        }
        self.report_vanished(now);
        self.release_behind();
        let due: Vec<u32> = self
            .resyncs
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(n, _)| *n)
            .collect();
        // Outcomes held for a re-read that the caller did not run (the
        // namespace is no longer watched) go out now.
        let stale: Vec<u32> = self
            .held
            .keys()
            .filter(|n| !self.resyncs.contains_key(n))
            .copied()
            .collect();
        for n in stale {
            self.release(n);
        }
        due.into_iter()
            .map(|n| {
                let plan = self.resyncs.remove(&n).expect("key from iteration");
                (n, plan.cause.map(|c| (c.cause, c.who, c.source)))
            })
            .collect()
    }

    /// Outcomes held for `netns`'s re-read go out (after its removals).
    fn release(&mut self, netns: u32) {
        if let Some(held) = self.held.remove(&netns) {
            self.out.extend(held);
        }
    }

    /// The outcome of a notification no request or record claimed.
    fn unclaimed(&self, o: Orphan, now: Instant) -> Outcome {
        let mut out = Outcome::new(Source::Netlink, o.op, o.netns, o.object);
        out.result = ok();
        out.nl_seq = nonzero(o.seq);
        out.replaced = o.replaced;
        out.seen = Some(o.seen);
        if o.seq != 0 || o.portid != 0 {
            // A request made it: one the tracer did not see.
            out.note = Some(format!(
                "no request seen for this change (netlink sequence {}, sender's port id {}, usually its pid): it came from a namespace or process the tracer does not watch, or its copy was lost",
                o.seq, o.portid
            ));
            return out;
        }
        // No request: the kernel made it, after some action.
        match self.causes.recent(o.netns, o.op, now) {
            Some(c) => {
                out.who = Some(c.who);
                out.ts_boot_ns = None;
                out.source = c.source;
                out.cause = Some(c.cause);
                out.note = Some(causes::after(c.cause, o.op));
            }
            None => {
                out.cause = Some(Cause::Unknown);
                out.note = Some(causes::unexplained(o.op));
            }
        }
        out
    }

    /// Whether anything waits on time: [`Engine::tick`] has nothing to do
    /// otherwise (the caller need not wake up for it).
    pub fn waiting(&self) -> bool {
        self.pending.len() > 0
            || self.orphans.len() > 0
            || !self.resyncs.is_empty()
            || !self.recovered.is_empty()
            || !self.held.is_empty()
            || !self.behind.is_empty()
    }

    /// Flush everything still waiting (end of session).
    pub fn drain(&mut self, now: Instant) {
        for r in self.recovered.values_mut() {
            r.until = Some(now);
        }
        for p in self.pending.values_mut() {
            p.deadline = now;
        }
        for o in self.orphans.values_mut() {
            o.deadline = now;
        }
        let _ = self.tick(now);
        let behind = std::mem::take(&mut self.behind);
        for o in behind {
            self.emit_now(o);
        }
        let held: Vec<u32> = self.held.keys().copied().collect();
        for n in held {
            self.release(n);
        }
    }

    /// Whether `o` must wait for an earlier, unresolved change of the same
    /// sender (the oldest waiting one): a request read at a syscall, or a
    /// kernel record whose notification has not come (a failed message of
    /// a datagram is known at once on the kprobe/fentry paths, while the
    /// earlier, successful one waits for its notification).
    fn blocked(&self, o: &Outcome) -> bool {
        let Some(who) = o.who.as_ref() else {
            return false;
        };
        self.pending
            .front()
            .is_some_and(|(id, f)| f.who.pid == who.pid && id < o.order.unwrap_or(u64::MAX))
    }

    fn emit(&mut self, o: Outcome) {
        if self.behind.len() < BEHIND_MAX && self.blocked(&o) {
            self.behind.push(o);
            return;
        }
        self.emit_now(o);
        self.release_behind();
    }

    /// Outcomes no longer behind an unresolved request go out, in order.
    fn release_behind(&mut self) {
        while !self.behind.is_empty()
            && (self.behind.len() >= BEHIND_MAX || !self.blocked(&self.behind[0]))
        {
            let o = self.behind.remove(0);
            self.emit_now(o);
        }
    }

    fn emit_now(&mut self, mut o: Outcome) {
        if let Some(m) = self.mirrors.get(&o.netns) {
            let dev = |r: &mut Route| {
                if r.dev.is_none() {
                    r.dev = r.ifindex.and_then(|i| m.dev(i));
                }
                for h in &mut r.nexthops {
                    if h.dev.is_none() {
                        h.dev = h.ifindex.and_then(|i| m.dev(i));
                    }
                }
            };
            if let Object::Route(r) = &mut o.object {
                dev(r);
            }
            if let Some(r) = &mut o.replaced {
                dev(r);
            }
        }
        // The kernel flushed routes of this namespace before this change:
        // the re-read that finds them runs first.
        if self.resyncs.contains_key(&o.netns) || self.held.contains_key(&o.netns) {
            self.held.entry(o.netns).or_default().push(o);
            return;
        }
        // A vanished route reported from its request or notification is
        // not reported again when the recovery's wait ends.
        if let (Op::Del, Object::Route(r), Some(rec)) =
            (o.op, &o.object, self.recovered.get_mut(&o.netns))
            && o.note.as_deref() != Some(NOTE_RECOVERED)
        {
            rec.vanished.remove(&recovery::route_id(r));
        }
        self.out.push(o);
    }
}

/// Why a namespace's routes were flushed: the action, who did it, and the
/// mechanism that saw it.
pub type FlushCause = (Cause, EventHeader, Source);

type SiblingKey = (
    u32,
    u32,
    u32,
    bool,
    Option<u32>,
    Option<String>,
    Option<u32>,
);

/// What a notification says besides its object.
struct Notified {
    netns: u32,
    op: Op,
    seq: u32,
    portid: u32,
    replaced: Option<Route>,
}

/// A netlink sequence number, where 0 means "none".
fn nonzero(seq: u32) -> Option<u32> {
    (seq != 0).then_some(seq)
}

fn objects_match(req: &Object, note: &Object) -> bool {
    match (req, note) {
        (Object::Route(a), Object::Route(b)) => matching::route_matches(a, b),
        (Object::Rule(a), Object::Rule(b)) => matching::rule_matches(a, b),
        _ => false,
    }
}

/// The notification describes what really changed; keep request-only
/// facts where it is silent.
fn merge(req: Object, note: Object) -> Object {
    match (req, note) {
        (Object::Route(r), Object::Route(mut n)) => {
            // A multipath route's next hops are its list; the request's
            // (or one sibling's) single next hop is not the route's.
            if n.nexthops.is_empty() {
                n.dev = n.dev.or(r.dev);
                n.ifindex = n.ifindex.or(r.ifindex);
                n.gateway = n.gateway.or(r.gateway);
            }
            n.nhid = n.nhid.or(r.nhid);
            if n.nexthops.is_empty() {
                n.nexthops = r.nexthops;
            }
            Object::Route(n)
        }
        (Object::Rule(r), Object::Rule(mut n)) => {
            n.iif = n.iif.or(r.iif);
            n.oif = n.oif.or(r.oif);
            Object::Rule(n)
        }
        (_, n) => n,
    }
}

/// The route a kernel hook saw.
fn route_from_kernel(r: &tracer_common::RouteEvent) -> Route {
    let family = Family::from_af(r.family);
    let addr = |bytes: &[u8; 16], fam: u8| -> Option<std::net::IpAddr> {
        match fam {
            2 => Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()),
            10 => Some(std::net::Ipv6Addr::from(*bytes).into()),
            _ => None,
        }
    };
    Route {
        family,
        table: Some(r.table),
        table_name: None,
        rtype: Some(names::route_type(r.rtype)),
        dst: addr(&r.dst, r.family).map(|a| crate::event::prefix(a, r.dst_len)),
        gateway: addr(&r.gw, r.gw_family).map(|a| a.to_string()),
        dev: None,
        ifindex: (r.oif > 0).then_some(r.oif as u32),
        // fib_config's 0 means "any metric" in a request.
        metric: (r.priority != 0).then_some(r.priority),
        protocol: Some(names::protocol(r.protocol)),
        scope: Some(names::scope(r.scope)),
        nexthops: Vec::new(),
        nhid: None,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "order_tests.rs"]
mod order_tests;
