//! Correlation: turn attribution records from the eBPF programs (who asked
//! for what, and on the kprobe/fentry paths what the kernel did) and the
//! kernel's own notifications (what really changed) into one event per
//! change.
//!
//! - Tracepoint path: a request read from the sender's memory waits for the
//!   notification that describes its outcome (matched by namespace,
//!   operation, sequence number and object), or for the NLMSG_ERROR the
//!   sender received (errors have no notification).
//! - kprobe/fentry paths: a kernel record already has the result; a
//!   successful one waits briefly for its notification to fill in details
//!   the request did not name (type, device).
//! - Notifications nobody claims are changes made by the kernel itself (IPv6
//!   routes removed on link down) or by a process the tracer could not see;
//!   they are attributed to the last link/address action in that namespace.
//! - IPv4 routes removed by a flush have no notification: after a link goes
//!   down, an address is removed or fib_table_flush runs, the namespace is
//!   dumped again and the routes that vanished from the mirror are reported.
mod matching;
pub mod mirror;
mod route_store;
mod waiting;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tracer_common::EventHeader;

use crate::{
    collect::record::{NlCopy, Record, source_of},
    event::{Cause, Family, Op, Route, Rule, Source},
    netlink::{
        decode::{NlItem, NlObj, decode_buffer},
        names,
        route_msg::RouteMsg,
    },
};
use mirror::NsMirror;
use waiting::Waiting;

/// How long a request waits for its outcome.
const REQUEST_WAIT: Duration = Duration::from_millis(1500);
/// How long an acknowledged request waits for the notification's details.
const ACKED_WAIT: Duration = Duration::from_millis(150);
/// How long a notification waits for the request that caused it.
const NOTIFY_WAIT: Duration = Duration::from_millis(400);
/// How long a link or address action explains kernel-made changes.
const CAUSE_WINDOW: Duration = Duration::from_secs(3);
/// Delay before re-dumping a namespace after a flush, so that notifications
/// already on their way are applied first.
const RESYNC_DELAY: Duration = Duration::from_millis(60);

/// What changed, as far as one side knows.
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
    pub ts_boot_ns: Option<u64>,
    pub source: Source,
    pub op: Op,
    pub netns: u32,
    pub who: Option<EventHeader>,
    pub object: Object,
    pub result: Option<crate::event::Name>,
    pub cause: Option<Cause>,
    pub nl_seq: Option<u32>,
    pub note: Option<String>,
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
}

struct Orphan {
    deadline: Instant,
    netns: u32,
    op: Op,
    object: Object,
    seq: u32,
}

#[derive(Clone)]
struct RecentCause {
    cause: Cause,
    who: EventHeader,
    source: Source,
    at: Instant,
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
    causes: HashMap<u32, RecentCause>,
    resyncs: HashMap<u32, ResyncPlan>,
    /// Per namespace, after a notification overflow: what the re-read found
    /// gone, until every input that may still name it has been read.
    recovered: HashMap<u32, Recovered>,
    out: Vec<Outcome>,
}

/// Removals a re-read found after a notification overflow. The inputs still
/// queued (the socket's backlog, the ring buffer) may name them again:
/// - `reported` were reported at once, with their waiting request; a
///   notification naming one later is dropped;
/// - `vanished` had no request yet: a request or notification arriving later
///   claims one and it is reported from them, once; what is left when
///   `until` has passed and the inputs are drained is reported by itself.
#[derive(Default)]
struct Recovered {
    reported: std::collections::HashSet<String>,
    vanished: HashMap<String, Route>,
    until: Option<Instant>,
}

/// How long after a re-read the inputs may still name its removals.
const RECOVERY_WAIT: Duration = Duration::from_secs(3);

/// A route's identity for `Recovered`.
fn route_id(r: &Route) -> String {
    format!(
        "{:?} {:?} {:?} {}",
        r.family,
        r.table,
        r.dst,
        r.metric.unwrap_or(0)
    )
}

/// Note on removals found by re-reading after a notification overflow.
const NOTE_RECOVERED: &str =
    "notification dropped by the kernel (socket overflow); removal found by re-reading the table";

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
            causes: HashMap::new(),
            resyncs: HashMap::new(),
            recovered: HashMap::new(),
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
                    let mut cause = self.cause_for(&f.hdr, source_of(&f.hdr), now);
                    cause.source = source_of(&f.hdr);
                    self.plan_resync(f.hdr.netns, Some(cause), now);
                }
            }
            Record::Exec { .. } | Record::Packet(_) | Record::Lookup(_) => {}
        }
    }

    /// What explains a kernel-made removal by the task in `hdr`: its own
    /// recent link/address action, else namespace teardown (a kworker running
    /// cleanup_net) or an unknown kernel reason.
    fn cause_for(&self, hdr: &EventHeader, source: Source, now: Instant) -> RecentCause {
        if let Some(c) = self.recent_cause(hdr.netns, now) {
            if c.who.tid == hdr.tid {
                return c;
            }
        }
        let comm = crate::output::escape::comm_from_bytes(&hdr.comm);
        let cause = if comm.starts_with("kworker") || comm.starts_with("netns") {
            Cause::NetnsExit
        } else {
            Cause::Kernel
        };
        RecentCause {
            cause,
            who: *hdr,
            source,
            at: now,
        }
    }

    /// The last link/address action in `netns`, if recent enough to explain
    /// what the kernel does next.
    fn recent_cause(&self, netns: u32, now: Instant) -> Option<RecentCause> {
        self.causes
            .get(&netns)
            .filter(|c| now.duration_since(c.at) < CAUSE_WINDOW)
            .cloned()
    }

    fn request(&mut self, copy: NlCopy, now: Instant) {
        let (items, _errors) = decode_buffer(&copy.data);
        let netns = copy.hdr.netns;
        for item in items {
            // Route and rule requests wait for their outcome; link and
            // address requests only explain what the kernel does next.
            let cause = match item.obj {
                NlObj::Route { op, route } => {
                    self.add_request(&copy.hdr, netns, op, Object::Route(route), item.seq, now);
                    None
                }
                NlObj::Rule { op, rule } => {
                    self.add_request(&copy.hdr, netns, op, Object::Rule(rule), item.seq, now);
                    None
                }
                NlObj::Link(l) if l.deleted => Some(Cause::LinkDel),
                NlObj::Link(l) if l.up == Some(false) => Some(Cause::LinkDown),
                NlObj::Addr { op: Op::Del, .. } => Some(Cause::AddrDel),
                _ => None,
            };
            if let Some(cause) = cause {
                let who = copy.hdr;
                let source = Source::Tracepoint;
                self.causes.insert(
                    netns,
                    RecentCause {
                        cause,
                        who,
                        source,
                        at: now,
                    },
                );
            }
        }
    }

    fn add_request(
        &mut self,
        who: &EventHeader,
        netns: u32,
        op: Op,
        object: Object,
        seq: u32,
        now: Instant,
    ) {
        if !self.scoped(op, &object) {
            return;
        }
        // The notification may have overtaken the request.
        if let Some(id) = self.orphans.first_with_seq(seq, |o| {
            o.netns == netns && o.op == op && objects_match(&object, &o.object)
        }) {
            let o = self.orphans.take(id).expect("id just found");
            self.emit(
                Source::Tracepoint,
                op,
                netns,
                Some(*who),
                merge(object, o.object),
                Some(0),
                None,
                Some(seq),
                None,
            );
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
            },
        );
    }

    fn ack(&mut self, hdr: &EventHeader, error: i32, seq: u32, now: Instant) {
        let Some(id) = self.pending.first_with_seq(seq, |p| {
            !p.from_kernel && p.who.pid == hdr.pid && p.result.is_none()
        }) else {
            return;
        };
        if error != 0 {
            // Failed requests change nothing: no notification will come.
            let p = self.pending.take(id).expect("id just found");
            self.emit_pending(p, None, Some(error), Some(seq), None, now);
            // A batch shares one sequence number; the error answers the first
            // failing message only, so siblings keep waiting.
        } else {
            let p = self.pending.get_mut(id).expect("id just found");
            p.result = Some(0);
            p.deadline = p.deadline.min(now + ACKED_WAIT);
        }
    }

    fn kernel_rule(&mut self, copy: NlCopy, now: Instant) {
        let (items, _) = decode_buffer(&copy.data);
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
        if ret != 0 {
            self.emit(
                source,
                op,
                netns,
                Some(*hdr),
                object,
                Some(ret),
                None,
                nonzero(seq),
                None,
            );
            return;
        }
        // A scan: kernel records match notifications on the object alone.
        if let Some(id) = self
            .orphans
            .first(|o| o.netns == netns && o.op == op && objects_match(&object, &o.object))
        {
            let o = self.orphans.take(id).expect("id just found");
            let cause = self.kernel_cause(hdr, source, op, seq, now);
            self.emit(
                source,
                op,
                netns,
                Some(*hdr),
                merge(object, o.object),
                Some(0),
                cause,
                nonzero(seq),
                None,
            );
            return;
        }
        self.pending.push(
            seq,
            false,
            Pending {
                deadline: now + NOTIFY_WAIT,
                source,
                op,
                netns,
                who: *hdr,
                object,
                seq,
                from_kernel: true,
                result: Some(0),
            },
        );
    }

    /// A removal the kernel made on its own (no netlink request: seq 0 and
    /// not from a netlink handler) gets a cause.
    fn kernel_cause(
        &self,
        hdr: &EventHeader,
        source: Source,
        op: Op,
        seq: u32,
        now: Instant,
    ) -> Option<Cause> {
        (op == Op::Del && seq == 0).then(|| self.cause_for(hdr, source, now).cause)
    }

    /// A notification read from a watched namespace.
    pub fn notification(&mut self, netns: u32, item: NlItem, now: Instant) {
        if let (Some(rec), NlObj::Route { op: Op::Del, route }) =
            (self.recovered.get_mut(&netns), &item.obj)
        {
            let id = route_id(route);
            if rec.reported.remove(&id) {
                return; // reported by `recover`
            }
            // A vanished route named again: reported from this notification.
            rec.vanished.remove(&id);
        }
        let prev_up = self.mirror(netns).apply(&item);
        match item.obj {
            NlObj::Route { op, route } => {
                self.notified_change(netns, op, Object::Route(route), item.seq, now)
            }
            NlObj::Rule { op, rule } => {
                self.notified_change(netns, op, Object::Rule(rule), item.seq, now)
            }
            NlObj::Link(l) => {
                let went_down = l.deleted || (prev_up == Some(true) && l.up == Some(false));
                if went_down && self.requests_for.flush_from_notifications {
                    let cause = self.recent_cause(netns, now);
                    self.plan_resync(netns, cause, now);
                }
            }
            NlObj::Addr { op: Op::Del, .. } if self.requests_for.flush_from_notifications => {
                let cause = self
                    .recent_cause(netns, now)
                    .filter(|c| c.cause == Cause::AddrDel);
                self.plan_resync(netns, cause, now);
            }
            _ => {}
        }
    }

    fn notified_change(&mut self, netns: u32, op: Op, object: Object, seq: u32, now: Instant) {
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
        if let Some(id) = found {
            let p = self.pending.take(id).expect("id just found");
            self.emit_pending(p, Some(object), Some(0), nonzero(seq), None, now);
            return;
        }
        self.orphans.push(
            seq,
            true,
            Orphan {
                deadline: now + NOTIFY_WAIT,
                netns,
                op,
                object,
                seq,
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

    /// Re-read the routes of `netns` (a due resync from `tick`, or at
    /// start): `dump` feeds every route of a fresh dump to the mirror as it
    /// is read. Routes missing from it were removed without a notification;
    /// with a `cause`, each is reported. A dump that fails or is
    /// interrupted removes nothing and is tried again, up to three times.
    pub fn resync(
        &mut self,
        netns: u32,
        cause: Option<(Cause, EventHeader, Source)>,
        dump: impl FnMut(&mut dyn FnMut(&RouteMsg)) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let gone = self.reread(netns, dump)?;
        let Some((cause, who, source)) = cause else {
            return Ok(());
        };
        for route in gone {
            self.emit(
                source,
                Op::Del,
                netns,
                Some(who),
                Object::Route(route),
                Some(0),
                Some(cause),
                None,
                Some(
                    "removed by the kernel without a notification; found by re-reading the table"
                        .into(),
                ),
            );
        }
        Ok(())
    }

    /// After the notification socket of `netns` overflowed (the kernel
    /// dropped notifications): re-read the routes and report each route
    /// that vanished meanwhile, with the waiting request that removed it
    /// when there is one. Returns how many removals were found.
    pub fn recover(
        &mut self,
        netns: u32,
        now: Instant,
        dump: impl FnMut(&mut dyn FnMut(&RouteMsg)) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let gone = self.reread(netns, dump)?;
        let found = gone.len();
        // Waiting removal requests of this namespace, oldest first, by prefix.
        let mut by_dst: HashMap<Option<String>, Vec<u64>> = HashMap::new();
        for (id, p) in self.pending.iter() {
            if let (true, Op::Del, Object::Route(r)) = (p.netns == netns, p.op, &p.object) {
                by_dst.entry(r.dst.clone()).or_default().push(id);
            }
        }
        by_dst.values_mut().for_each(|ids| ids.sort_unstable());
        for route in gone {
            let request = by_dst.get_mut(&route.dst).and_then(|ids| {
                let i = ids.iter().position(|id| {
                    self.pending.get(*id).is_some_and(
                        |p| matches!(&p.object, Object::Route(req) if matching::route_matches(req, &route)),
                    )
                })?;
                Some(ids.remove(i))
            });
            let id = route_id(&route);
            match request.and_then(|id| self.pending.take(id)) {
                Some(p) => {
                    let seq = nonzero(p.seq);
                    let note = Some(NOTE_RECOVERED.to_string());
                    self.emit_pending(p, Some(Object::Route(route)), Some(0), seq, note, now);
                    self.recovered.entry(netns).or_default().reported.insert(id);
                }
                None => {
                    self.recovered
                        .entry(netns)
                        .or_default()
                        .vanished
                        .insert(id, route);
                }
            }
        }
        self.recovered.entry(netns).or_default().until = Some(now + RECOVERY_WAIT);
        Ok(found)
    }

    /// Re-read the routes of `netns` into the mirror; the routes that
    /// vanished. A dump that fails or is interrupted removes nothing and is
    /// tried again, up to three times.
    fn reread(
        &mut self,
        netns: u32,
        mut dump: impl FnMut(&mut dyn FnMut(&RouteMsg)) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Route>> {
        let mut tries = 0;
        loop {
            let m = self.mirror(netns);
            let r = dump(&mut |msg| m.see(msg));
            let gone = m.end_sync(r.is_ok());
            tries += 1;
            match r {
                Ok(()) => {
                    log::debug!("namespace {netns}: {} routes mirrored", m.route_count());
                    return Ok(gone);
                }
                Err(e) if tries >= 3 => return Err(e),
                Err(e) => log::debug!("re-reading routes of namespace {netns}: {e:#}; again"),
            }
        }
    }

    /// Advance time: expire waits and start due resyncs.
    pub fn tick(&mut self, now: Instant) -> Vec<(u32, Option<(Cause, EventHeader, Source)>)> {
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
            self.emit_pending(p, None, result, nonzero(seq), note, now);
        }
        while let Some((id, _)) = self.orphans.front().filter(|(_, o)| o.deadline <= now) {
            let o = self.orphans.take(id).expect("front exists");
            let recent = self.recent_cause(o.netns, now);
            let (who, cause, source, note) = match (&recent, o.seq) {
                (Some(c), 0) => (
                    Some(c.who),
                    (o.op == Op::Del).then_some(c.cause),
                    c.source,
                    Some(format!("changed by the kernel after {} by this process", c.cause.as_str())),
                ),
                _ => (
                    None,
                    None,
                    Source::Netlink,
                    Some("no request seen: made by the kernel or from a namespace or process the tracer does not see".to_string()),
                ),
            };
            self.emit(
                source,
                o.op,
                o.netns,
                who,
                o.object,
                Some(0),
                cause,
                nonzero(o.seq),
                note,
            );
        }
        self.report_vanished(now);
        let due: Vec<u32> = self
            .resyncs
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(n, _)| *n)
            .collect();
        due.into_iter()
            .map(|n| {
                let plan = self.resyncs.remove(&n).expect("key from iteration");
                (n, plan.cause.map(|c| (c.cause, c.who, c.source)))
            })
            .collect()
    }

    /// Report the removals a re-read found that nothing named since, once
    /// their wait is over and no removal request of the namespace waits.
    fn report_vanished(&mut self, now: Instant) {
        let done: Vec<u32> = self
            .recovered
            .iter()
            .filter(|(netns, r)| {
                r.until.is_none_or(|u| u <= now)
                    && !self.pending.iter().any(|(_, p)| {
                        p.netns == **netns
                            && p.op == Op::Del
                            && matches!(p.object, Object::Route(_))
                    })
            })
            .map(|(n, _)| *n)
            .collect();
        for netns in done {
            let rec = self.recovered.remove(&netns).expect("key from iteration");
            for (_, route) in rec.vanished {
                self.emit(
                    Source::Netlink,
                    Op::Del,
                    netns,
                    None,
                    Object::Route(route),
                    Some(0),
                    None,
                    None,
                    Some(NOTE_RECOVERED.to_string()),
                );
            }
        }
    }

    /// Whether anything waits on time: [`Engine::tick`] has nothing to do
    /// otherwise (the caller need not wake up for it).
    pub fn waiting(&self) -> bool {
        self.pending.len() > 0
            || self.orphans.len() > 0
            || !self.resyncs.is_empty()
            || !self.recovered.is_empty()
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
    }

    /// Emit a change that waited for its other half; `note_obj` is the
    /// notification that completed it, if one did. Changes seen by a kernel
    /// hook without a request get their cause here.
    fn emit_pending(
        &mut self,
        p: Pending,
        note_obj: Option<Object>,
        result: Option<i32>,
        nl_seq: Option<u32>,
        note: Option<String>,
        now: Instant,
    ) {
        let cause = if p.from_kernel {
            self.kernel_cause(&p.who, p.source, p.op, p.seq, now)
        } else {
            None
        };
        let object = match note_obj {
            Some(n) => merge(p.object, n),
            None => p.object,
        };
        let (source, op, netns, who) = (p.source, p.op, p.netns, p.who);
        self.emit(
            source,
            op,
            netns,
            Some(who),
            object,
            result,
            cause,
            nl_seq,
            note,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        source: Source,
        op: Op,
        netns: u32,
        who: Option<EventHeader>,
        mut object: Object,
        result: Option<i32>,
        cause: Option<Cause>,
        nl_seq: Option<u32>,
        note: Option<String>,
    ) {
        if let (Object::Route(r), Some(m)) = (&mut object, self.mirrors.get(&netns)) {
            if r.dev.is_none() {
                r.dev = r.ifindex.and_then(|i| m.dev(i));
            }
        }
        // A vanished route reported from its request or notification is
        // not reported again when the recovery's wait ends.
        if let (Op::Del, Object::Route(r), Some(rec)) =
            (op, &object, self.recovered.get_mut(&netns))
            && note.as_deref() != Some(NOTE_RECOVERED)
        {
            rec.vanished.remove(&route_id(r));
        }
        self.out.push(Outcome {
            ts_boot_ns: who.map(|w| w.ts_ns),
            source,
            op,
            netns,
            who,
            object,
            result: result.map(names::errno_name),
            cause,
            nl_seq,
            note,
        });
    }
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
            n.dev = n.dev.or(r.dev);
            n.ifindex = n.ifindex.or(r.ifindex);
            n.gateway = n.gateway.or(r.gateway);
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
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
