//! Re-reading a namespace's routes: after a flush the kernel does not
//! announce (`resync`), and after the notification socket overflowed
//! (`recover`), when the removals it dropped must still be reported once.
use std::{collections::HashMap, time::Instant};

use crate::netlink::decode::{NlItem, NlObj};

use super::{Engine, Note, Object, Outcome, Pending, RecentCause, matching, nonzero, ok};
use crate::{
    event::{Cause, Family, Op, Route, Source},
    netlink::route_msg::RouteMsg,
};

/// How long after a re-read the inputs may still name its removals.
pub(super) const RECOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Changes a re-read found: removals and additions after a notification
/// overflow, and removals after a flush when nothing explains one. The inputs still queued (the socket's
/// backlog, the ring buffer) may name them again:
/// - `reported` were reported at once, with their waiting request; a
///   notification naming one later is dropped;
/// - `vanished` had no request yet: a request or notification arriving later
///   claims one and it is reported from them, once; what is left when
///   `until` has passed and the inputs are drained is reported by itself,
///   as the outcome kept here.
#[derive(Default)]
pub(super) struct Recovered {
    pub reported: std::collections::HashSet<(Op, RouteId)>,
    pub vanished: HashMap<(Op, RouteId), Outcome>,
    pub until: Option<Instant>,
}

/// A route's identity for `Recovered`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct RouteId {
    family: Option<Family>,
    table: Option<u32>,
    dst: Option<String>,
    metric: u32,
}

pub(super) fn route_id(r: &Route) -> RouteId {
    RouteId {
        family: r.family,
        table: r.table,
        dst: r.dst.clone(),
        metric: r.metric.unwrap_or(0),
    }
}

impl Engine {
    /// Re-read the routes of `netns` (a due resync from `tick`, or at
    /// start): `dump` feeds every route of a fresh dump to the mirror as it
    /// is read. Routes missing from it were removed without a notification;
    /// each is reported, with the first of `causes` that explains it (one
    /// about its device). One nothing explains whose device is up (no
    /// link change either) may be a request's removal whose notification
    /// is still queued (the re-read raced it): it waits, as after an
    /// overflow, and is reported as unexplained only when nothing claims
    /// it. A dump that fails or is interrupted removes nothing and is tried
    /// again, up to three times.
    pub fn resync(
        &mut self,
        netns: u32,
        causes: super::FlushCauses,
        now: Instant,
        dump: impl FnMut(&mut dyn FnMut(&RouteMsg)) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let gone = self.reread(netns, dump, None);
        // What waited for this re-read follows its removals, whatever the
        // dump gave; except what the kernel did before the flush that
        // explains a removal (a flush seen while the re-read of an earlier
        // one was planned, `plan_resync`): that goes first.
        let mut held = self.held.remove(&netns).unwrap_or_default();
        let gone = match gone {
            Ok(g) => g,
            Err(e) => {
                self.out.extend(held);
                return Err(e);
            }
        };
        let mut found = Vec::with_capacity(gone.len());
        for route in gone {
            // The kernel announces every IPv6 removal (only IPv4 routes go
            // in a flush without a word): one missing from the dump was
            // removed after the flush, and its notification, still to be
            // read, reports it. It stays in the mirror for that (on 5.10 a
            // re-read raced the next `ip nexthop del` and reported its
            // IPv6 route twice, first without its cause).
            if route.family == Some(Family::Inet6) {
                self.mirror(netns).apply(&NlItem {
                    seq: 0,
                    portid: 0,
                    flags: 0,
                    obj: NlObj::Route { op: Op::Add, route },
                });
                continue;
            }
            let id = route_id(&route);
            // With nothing explaining it and its device up, a removal whose
            // notification is still to be read, most likely.
            let device_up = route.ifindex.is_none_or(|i| self.mirror(netns).link_up(i));
            // A flush record whose process's action is unknown (its request
            // not read: lost, or not decoded), for a route whose device the
            // notifications show down or deleted: the flush in that
            // process's syscall took the device's routes, so its action
            // was taking the device down (or away).
            let lost = route.ifindex.and_then(|i| self.mirror(netns).link_lost(i));
            let mut o = match causes.for_route(&route).cloned().map(|c| match lost {
                Some(cause) if c.cause == Cause::Unknown => RecentCause { cause, ..c },
                _ => c,
            }) {
                Some(c) => {
                    let mut o = Outcome::new(c.source, Op::Del, netns, Object::Route(route));
                    o.who = Some(c.who);
                    o.ts_boot_ns = Some(c.who.ts_ns);
                    o.cause = Some(c.cause);
                    o.note = Some(if c.cause == Cause::Unknown {
                        Note::FlushedUnexplained
                    } else {
                        Note::Flushed
                    });
                    o
                }
                None => {
                    let mut o = Outcome::new(Source::Netlink, Op::Del, netns, Object::Route(route));
                    o.cause = Some(Cause::Unknown);
                    o.note = Some(Note::FlushedUnexplained);
                    o
                }
            };
            o.result = ok();
            if o.cause == Some(Cause::Unknown) && device_up {
                self.await_claim(netns, (Op::Del, id), o, now);
                continue;
            }
            // After the held changes the kernel made before its cause
            // (kernel timestamps; one without stops the count).
            let before = o.ts_boot_ns.map_or(0, |at| {
                held.iter()
                    .take_while(|h| h.ts_boot_ns.is_some_and(|t| t < at))
                    .count()
            });
            found.push((before, o));
        }
        found.sort_by_key(|(before, _)| *before);
        let mut drained = 0;
        for (before, o) in found {
            self.out.extend(held.drain(..before - drained));
            drained = before;
            self.emit(o);
        }
        self.out.extend(held);
        Ok(())
    }

    /// After the notification socket of `netns` overflowed (the kernel
    /// dropped notifications): re-read the routes and report each route
    /// that vanished or appeared meanwhile, with the waiting request that
    /// made the change when there is one. Returns how many changes were
    /// found.
    pub fn recover(
        &mut self,
        netns: u32,
        now: Instant,
        dump: impl FnMut(&mut dyn FnMut(&RouteMsg)) -> anyhow::Result<()>,
    ) -> anyhow::Result<usize> {
        let mut appeared = Vec::new();
        let gone = self.reread(netns, dump, Some(&mut appeared))?;
        let found = gone.len() + appeared.len();
        // Waiting requests of this namespace, oldest first, by change and
        // prefix.
        let mut by_dst: HashMap<(Op, Option<String>), Vec<u64>> = HashMap::new();
        for (id, p) in self.pending.iter() {
            if let (true, Object::Route(r)) = (p.netns == netns, &p.object) {
                by_dst.entry((p.op, r.dst.clone())).or_default().push(id);
            }
        }
        by_dst.values_mut().for_each(|ids| ids.sort_unstable());
        let changes = gone
            .into_iter()
            .map(|r| (Op::Del, r))
            .chain(appeared.into_iter().map(|r| (Op::Add, r)));
        for (op, route) in changes {
            let request = by_dst.get_mut(&(op, route.dst.clone())).and_then(|ids| {
                let i = ids.iter().position(|id| {
                    self.pending.get(*id).is_some_and(
                        |p| matches!(&p.object, Object::Route(req) if matching::route_matches(req, &route)),
                    )
                })?;
                Some(ids.remove(i))
            });
            let id = (op, route_id(&route));
            match request.and_then(|id| self.pending.take(id)) {
                Some(p) => {
                    let seq = nonzero(p.seq);
                    let o = Pending::outcome(p, Some(Object::Route(route)), Some(0), seq);
                    let mut o = self.with_kernel_cause(o, now);
                    o.note = Some(Note::Recovered);
                    self.emit(o);
                    self.recovered.entry(netns).or_default().reported.insert(id);
                }
                None => {
                    let mut o = Outcome::new(Source::Netlink, op, netns, Object::Route(route));
                    o.result = ok();
                    o.note = Some(Note::Recovered);
                    self.await_claim(netns, id, o, now);
                }
            }
        }
        // The inputs still queued may name the ones reported at once too.
        let rec = self.recovered.entry(netns).or_default();
        rec.until = rec.until.max(Some(now + RECOVERY_WAIT));
        Ok(found)
    }

    /// A change a re-read found that a request or notification still
    /// queued may claim (`already_recovered`, `place`): `o` is reported by
    /// itself only once `RECOVERY_WAIT` has passed unclaimed.
    fn await_claim(&mut self, netns: u32, id: (Op, RouteId), o: Outcome, now: Instant) {
        let rec = self.recovered.entry(netns).or_default();
        rec.vanished.insert(id, o);
        rec.until = rec.until.max(Some(now + RECOVERY_WAIT));
    }

    /// Re-read the routes of `netns` into the mirror; the routes that
    /// vanished, and with `appeared` those that appeared. A dump that fails
    /// or is interrupted removes nothing and is tried again, up to three
    /// times.
    fn reread(
        &mut self,
        netns: u32,
        mut dump: impl FnMut(&mut dyn FnMut(&RouteMsg)) -> anyhow::Result<()>,
        mut appeared: Option<&mut Vec<Route>>,
    ) -> anyhow::Result<Vec<Route>> {
        let mut tries = 0;
        loop {
            let m = self.mirror(netns);
            let r = dump(&mut |msg| m.see(msg));
            // What a failed try added to the mirror counts too.
            let gone = m.end_sync(r.is_ok(), appeared.as_deref_mut());
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

    /// Report the changes a re-read found that nothing named since, once
    /// their wait is over and no route request of the namespace waits.
    pub(super) fn report_vanished(&mut self, now: Instant) {
        let done: Vec<u32> =
            self.recovered
                .iter()
                .filter(|(netns, r)| {
                    r.until.is_none_or(|u| u <= now)
                        && !self.pending.iter().any(|(_, p)| {
                            p.netns == **netns && matches!(p.object, Object::Route(_))
                        })
                })
                .map(|(n, _)| *n)
                .collect();
        for netns in done {
            let rec = self.recovered.remove(&netns).expect("key from iteration");
            for (_, o) in rec.vanished {
                let o = self.explain_late(o, now);
                self.emit(o);
            }
        }
    }

    /// A removal the re-read found that a flush record of a known process
    /// explained with nothing, and that waited: what was read during its
    /// wait may say why. The process that flushed can take longer than
    /// `RESYNC_DELAY` to send the link's notification (it is sent after
    /// the flush, in the same syscall), and its request may be read late
    /// too: seen in QEMU on the fentry rung, where `ip link set v0 down`
    /// came out as `unknown`. That process's own action read since, else
    /// its device down or deleted by now, gives the cause; another
    /// process's action never does.
    fn explain_late(&self, mut o: Outcome, now: Instant) -> Outcome {
        let (Some(Cause::Unknown), Some(who), Op::Del, Object::Route(route)) =
            (o.cause, o.who, o.op, &o.object)
        else {
            return o;
        };
        let since = now
            .checked_sub(RECOVERY_WAIT + super::causes::CAUSE_WINDOW)
            .unwrap_or(now);
        let devs = super::causes::route_devs(route);
        let cause = match self.causes.of_task(o.netns, Op::Del, who.tid, &devs, since) {
            Some(c) if c.cause != Cause::Unknown => Some(c.cause),
            _ => route
                .ifindex
                .and_then(|i| self.mirror_of(o.netns)?.link_lost(i)),
        };
        if let Some(cause) = cause {
            o.cause = Some(cause);
            o.note = Some(Note::Flushed);
        }
        o
    }

    /// Whether a route notification was already reported by `recover`
    /// (then it is dropped); a change it names is no longer waiting.
    pub(super) fn already_recovered(&mut self, netns: u32, op: Op, route: &Route) -> bool {
        let Some(rec) = self.recovered.get_mut(&netns) else {
            return false;
        };
        let id = (op, route_id(route));
        if rec.reported.remove(&id) {
            return true;
        }
        rec.vanished.remove(&id);
        false
    }
}
