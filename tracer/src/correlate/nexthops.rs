//! Nexthop objects in the correlator. Their requests, notifications and
//! kernel records pair like those of rules; what is theirs alone is what
//! goes with them:
//! - Deleting a nexthop removes the routes that use it, and the groups
//!   left without members with their routes; the groups that keep members
//!   change. The kernel sends no notification for the IPv4 routes (they go
//!   in fib_table_flush) and one per IPv6 route. So the consequences are
//!   worked out from the mirror when the deletion's notification is read,
//!   and reported right after the deletion, with its process.
//! - Replacing a nexthop changes what its routes forward to: each is a
//!   `route_replace` with the route before and after.
//! - What the kernel still says about them later (IPv6 removals, the
//!   compat-mode route notifications of a replacement, a changed group's
//!   own notification, kprobe/fentry records of fib6_del) was reported
//!   already and is not reported again (`Expected`).
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use super::{
    Engine, Note, Object, Outcome, ok,
    recovery::{RouteId, route_id},
};
use crate::event::{Cause, Family, Nexthop, Op, Route, Source};

/// How long the kernel's later messages about a consequence are expected.
const EXPECT_WAIT: Duration = Duration::from_secs(3);

/// What the kernel will still say about consequences already reported.
#[derive(Default)]
pub(super) struct Expected {
    /// Route notifications: IPv6 removals, and the replacements the
    /// kernel announces in its nexthop compat mode (both families).
    notify: HashSet<RouteId>,
    /// kprobe/fentry records of IPv6 removals (fib6_del).
    records: HashSet<RouteId>,
    /// Notifications of groups changed or removed with a member.
    nexthops: HashSet<u32>,
    until: Option<Instant>,
}

/// Consequences waiting for the outcome of their nexthop change, by
/// (namespace, id, deletion).
pub(super) type After = HashMap<(u32, u32, bool), Vec<Outcome>>;

/// What to do with a nexthop notification.
pub(super) enum NhSeen {
    /// Already reported (a group the kernel changed or removed with a
    /// member): the mirror takes it, nothing else.
    Swallow,
    /// A change: `replaced` is the object it took the place of.
    Change { replaced: Option<Box<Nexthop>> },
}

/// A consequence of a nexthop change, before its process is known.
fn consequence(netns: u32, op: Op, object: Object, cause: Cause, nhid: u32) -> Outcome {
    let mut o = Outcome::new(Source::Netlink, op, netns, object);
    o.result = ok();
    o.cause = Some(cause);
    o.cause_nhid = Some(nhid);
    o.note = Some(Note::WithNexthop {
        id: nhid,
        deleted: cause == Cause::NexthopDel,
    });
    o
}

/// Whether two reports of a nexthop describe the same object (the
/// mirror names devices; a notification gives their index only).
fn same_object(mirrored: &Nexthop, notified: &Nexthop) -> bool {
    let mut n = notified.clone();
    n.dev = mirrored.dev.clone();
    *mirrored == n
}

impl Engine {
    fn expected(&mut self, netns: u32, now: Instant) -> &mut Expected {
        let e = self.nh_expected.entry(netns).or_default();
        e.until = Some(now + EXPECT_WAIT);
        e
    }

    /// Expect the kernel's later messages about a route a consequence
    /// reported: a removal's IPv6 notification and record, or a
    /// replacement's compat-mode notification.
    fn expect_route(&mut self, netns: u32, r: &Route, op: Op, now: Instant) {
        let id = route_id(r);
        // A kernel hook's record of the IPv6 removal (fib6_del) may be
        // read already, waiting for its notification.
        let waiting = (op == Op::Del && r.family == Some(Family::Inet6))
            .then(|| {
                self.pending.first_unindexed(|p| {
                    p.from_kernel
                        && p.netns == netns
                        && p.op == Op::Del
                        && matches!(&p.object, Object::Route(w) if super::matching::route_matches(w, r))
                })
            })
            .flatten();
        if let Some(id) = waiting {
            self.pending.take(id);
        }
        let e = self.expected(netns, now);
        match op {
            Op::Del if r.family == Some(Family::Inet6) => {
                e.notify.insert(id.clone());
                if waiting.is_none() {
                    e.records.insert(id);
                }
            }
            Op::Del => {}
            Op::Add => {
                e.notify.insert(id);
            }
        }
    }

    /// Whether a route notification was reported already as a nexthop's
    /// consequence (then the mirror takes it and nothing else happens).
    pub(super) fn expected_route_notification(&mut self, netns: u32, route: &Route) -> bool {
        self.nh_expected
            .get_mut(&netns)
            .is_some_and(|e| e.notify.remove(&route_id(route)))
    }

    /// Whether a kernel hook's route removal was reported already.
    pub(super) fn expected_route_record(&mut self, netns: u32, route: &Route) -> bool {
        self.nh_expected
            .get_mut(&netns)
            .is_some_and(|e| e.records.remove(&route_id(route)))
    }

    /// Forget expectations whose time is over.
    pub(super) fn expire_expected(&mut self, now: Instant) {
        self.nh_expected
            .retain(|_, e| e.until.is_some_and(|u| u > now));
    }

    /// A nexthop notification, before the mirror applies it.
    pub(super) fn nexthop_notified(
        &mut self,
        netns: u32,
        op: Op,
        nh: &Nexthop,
        now: Instant,
    ) -> NhSeen {
        if self
            .nh_expected
            .get_mut(&netns)
            .is_some_and(|e| e.nexthops.remove(&nh.id))
        {
            return NhSeen::Swallow;
        }
        let old = self.mirror(netns).nexthop(nh.id).cloned();
        match op {
            Op::Del => {
                let after = self.deleted(netns, nh.id, now);
                self.nh_after.insert((netns, nh.id, true), after);
                NhSeen::Change { replaced: None }
            }
            Op::Add => {
                // An object the mirror has as it is (the namespace's first
                // dump already held this addition) replaced nothing.
                let Some(old) = old.filter(|o| !same_object(o, nh)) else {
                    return NhSeen::Change { replaced: None };
                };
                let after = self.replaced(netns, &old, nh, now);
                self.nh_after.insert((netns, nh.id, false), after);
                NhSeen::Change {
                    replaced: Some(Box::new(old)),
                }
            }
        }
    }

    /// What deleting nexthop `id` does, in the kernel's order: the groups
    /// that held it change (or go, with their routes, when it was their
    /// last member), then its own routes go. The mirror follows.
    fn deleted(&mut self, netns: u32, id: u32, now: Instant) -> Vec<Outcome> {
        let cause = Cause::NexthopDel;
        let mut after = Vec::new();
        let own = self.mirror(netns).routes_using(id);
        for g in self.mirror(netns).groups_with(id) {
            let Some(old) = self.mirror(netns).nexthop(g).cloned() else {
                continue;
            };
            let mut new = old.clone();
            new.group.retain(|m| m.id != id);
            self.expected(netns, now).nexthops.insert(g);
            if new.group.is_empty() {
                let routes = self.mirror(netns).routes_using(g);
                self.mirror(netns).apply_nexthop(Op::Del, &old);
                after.push(consequence(
                    netns,
                    Op::Del,
                    Object::Nexthop(Box::new(old)),
                    cause,
                    id,
                ));
                for r in routes {
                    self.mirror(netns).remove_route(&r);
                    self.expect_route(netns, &r, Op::Del, now);
                    after.push(consequence(netns, Op::Del, Object::Route(r), cause, id));
                }
            } else {
                let before = self.mirror(netns).routes_using(g);
                self.mirror(netns).apply_nexthop(Op::Add, &new);
                let mut c = consequence(netns, Op::Add, Object::Nexthop(Box::new(new)), cause, id);
                c.replaced = Some(Object::Nexthop(Box::new(old)));
                after.push(c);
                after.extend(self.rerouted(netns, before, cause, id));
            }
        }
        for r in own {
            self.mirror(netns).remove_route(&r);
            self.expect_route(netns, &r, Op::Del, now);
            after.push(consequence(netns, Op::Del, Object::Route(r), cause, id));
        }
        after
    }

    /// What replacing nexthop `old` by `new` does: its routes, and those of
    /// the groups that hold it, forward elsewhere.
    fn replaced(&mut self, netns: u32, old: &Nexthop, new: &Nexthop, now: Instant) -> Vec<Outcome> {
        let m = self.mirror(netns);
        let mut before = m.routes_using(old.id);
        for g in m.groups_with(old.id) {
            before.extend(m.routes_using(g));
        }
        for r in &before {
            self.expect_route(netns, r, Op::Add, now);
        }
        self.mirror(netns).apply_nexthop(Op::Add, new);
        self.rerouted(netns, before, Cause::NexthopReplace, old.id)
    }

    /// `route_replace` consequences for routes whose objects changed: each
    /// route as it was (`before`) and as the mirror resolves it now; the
    /// ones that forward as before are left out.
    fn rerouted(&mut self, netns: u32, before: Vec<Route>, cause: Cause, id: u32) -> Vec<Outcome> {
        let m = self.mirror(netns);
        before
            .into_iter()
            .filter_map(|old| {
                let mut new = old.clone();
                m.resolve(&mut new);
                new.name_devs(|i| m.dev(i));
                (new != old).then(|| {
                    let mut c = consequence(netns, Op::Add, Object::Route(new), cause, id);
                    c.replaced = Some(Object::Route(old));
                    c
                })
            })
            .collect()
    }

    /// The consequences of a nexthop change whose outcome `o` is going out
    /// now, with its process, time and mechanism.
    pub(super) fn take_after(&mut self, o: &Outcome) -> Vec<Outcome> {
        let Object::Nexthop(nh) = &o.object else {
            return Vec::new();
        };
        if o.result != ok() {
            return Vec::new();
        }
        let Some(mut after) = self.nh_after.remove(&(o.netns, nh.id, o.op == Op::Del)) else {
            return Vec::new();
        };
        for c in &mut after {
            c.who = o.who;
            c.ts_boot_ns = o.ts_boot_ns;
            c.seen = o.seen;
            c.source = o.source;
        }
        after
    }
}

impl Engine {
    /// The namespace's nexthops from a fresh dump, after a flush (`causes`)
    /// or a notification overflow (`overflow`). The kernel removes a
    /// device's nexthops without a notification when it goes down or away:
    /// those that vanished and sat on a device a link action in `causes`
    /// took are reported as removed, with that action. Any other that
    /// vanished was deleted by a request whose notification is still on its
    /// way (it may be read after the dump): it stays in the mirror for that
    /// notification. After an overflow, every one that vanished is
    /// reported: its notification may be among those dropped.
    pub fn reload_nexthops(
        &mut self,
        netns: u32,
        items: &[crate::netlink::decode::NlItem],
        causes: &super::FlushCauses,
        overflow: bool,
    ) {
        for nh in self.mirror(netns).load_nexthops(items) {
            let link = causes
                .0
                .iter()
                .find(|c| {
                    matches!(c.cause, Cause::LinkDown | Cause::LinkDel)
                        && c.ifindex.is_some()
                        && c.ifindex == nh.ifindex
                })
                .cloned();
            let mut o = match (link, overflow) {
                (Some(c), _) => {
                    let mut o =
                        Outcome::new(c.source, Op::Del, netns, Object::Nexthop(Box::new(nh)));
                    o.who = Some(c.who);
                    o.ts_boot_ns = Some(c.who.ts_ns);
                    o.cause = Some(c.cause);
                    o.note = Some(Note::Flushed);
                    o
                }
                (None, true) => {
                    let mut o = Outcome::new(
                        Source::Netlink,
                        Op::Del,
                        netns,
                        Object::Nexthop(Box::new(nh)),
                    );
                    o.note = Some(Note::Recovered);
                    o
                }
                (None, false) => {
                    self.mirror(netns).apply_nexthop(Op::Add, &nh);
                    continue;
                }
            };
            o.result = ok();
            self.emit(o);
        }
    }
}
