//! Notifications from the watched namespaces: what really changed. One
//! completes a waiting request or kernel record; one nothing claims is a
//! change the kernel made (explained by `causes`) or one the tracer could
//! not see the request of.
use std::time::{Duration, Instant};

use super::{
    Engine, KERNEL_NOTIFY_WAIT, NLM_F_REPLACE, Note, Notified, Object, Orphan, Outcome, Pending,
    loosely_alike, nexthops::NhSeen, nonzero, objects_match, ok,
};
use crate::{
    event::{Cause, Op, Route, Source},
    netlink::decode::{NlItem, NlObj},
};

/// Longest a notification waits for a kernel hook's record while its
/// sender lives (`sender_busy`).
const SENDER_WAIT: Duration = Duration::from_secs(1);

impl Engine {
    /// A notification read from a watched namespace.
    pub fn notification(&mut self, netns: u32, mut item: NlItem, now: Instant) {
        if let NlObj::Route { op, route } = &item.obj
            && self.already_recovered(netns, *op, route)
        {
            return;
        }
        // Reported already, as what went with a nexthop's deletion or
        // replacement.
        if let NlObj::Route { op, route } = &item.obj
            && (*op == Op::Del || item.flags & NLM_F_REPLACE != 0)
            && self.expected_route_notification(netns, route)
        {
            self.mirror(netns).apply(&item);
            return;
        }
        // The route or nexthop a replacement took the place of, before the
        // mirror forgets it.
        let mut replaced = match &item.obj {
            // The kernel flags a notification NLM_F_REPLACE only when the
            // route took another's place: a replacement even when the
            // mirror no longer holds the old one (a re-read while behind
            // took it out), whose `old` then says only which route it was.
            NlObj::Route { op: Op::Add, route } if item.flags & NLM_F_REPLACE != 0 => {
                Some(Object::Route(
                    self.mirror(netns)
                        .replaced_by(route)
                        .unwrap_or_else(|| Route {
                            family: route.family,
                            table: route.table,
                            dst: route.dst.clone(),
                            metric: route.metric,
                            ..Route::default()
                        }),
                ))
            }
            _ => None,
        };
        if let NlObj::Nexthop { op, nexthop } = &item.obj {
            match self.nexthop_notified(netns, *op, nexthop, now) {
                NhSeen::Swallow => {
                    self.mirror(netns).apply(&item);
                    return;
                }
                NhSeen::Change { replaced: r } => replaced = r.map(Object::Nexthop),
            }
        }
        if let NlObj::Route { route, .. } = &mut item.obj {
            self.mirror(netns).resolve(route);
        }
        let prev_up = self.mirror(netns).apply(&item);
        let notified = |op| Notified {
            netns,
            op,
            seq: item.seq,
            portid: item.portid,
            replaced,
        };
        match item.obj {
            NlObj::Route { op, route } => {
                self.notified_change(notified(op), Object::Route(route), now)
            }
            NlObj::Rule { op, rule } => self.notified_change(notified(op), Object::Rule(rule), now),
            NlObj::Nexthop { op, nexthop } => {
                self.notified_change(notified(op), Object::Nexthop(nexthop), now)
            }
            NlObj::Link(l) => {
                let went_down = l.deleted || (prev_up == Some(true) && l.up == Some(false));
                if went_down {
                    self.causes.went_down(netns, l.ifindex, now);
                }
                if went_down && self.requests_for.flush_from_notifications {
                    let cause = self.causes.explaining(netns, Op::Del, &[l.ifindex], now);
                    self.plan_resync(netns, cause, now);
                }
            }
            NlObj::Addr {
                op: Op::Del,
                ifindex,
                ..
            } if self.requests_for.flush_from_notifications => {
                let cause = self
                    .causes
                    .explaining(netns, Op::Del, &[ifindex], now)
                    .filter(|c| c.cause == Cause::AddrDel);
                self.plan_resync(netns, cause, now);
            }
            _ => {}
        }
    }

    pub(super) fn notified_change(&mut self, n: Notified, object: Object, now: Instant) {
        let Notified { netns, op, seq, .. } = n;
        // Requests read at syscalls match on sequence number and object;
        // kernel records (whose seq is that of the request, or 0) on object.
        let same =
            |p: &Pending| p.netns == netns && p.op == op && objects_match(&p.object, &object);
        let request = self.pending.first_for(seq, n.portid, &same);
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
                    self.pending.first_for(seq, n.portid, |p| {
                        !p.from_kernel
                            && p.netns == netns
                            && p.op == op
                            && loosely_alike(&p.object, &object)
                    })
                })
                .flatten()
        });
        if let Some(id) = found {
            let p = self.pending.take(id).expect("id just found");
            if p.wants_ack && p.result.is_none() {
                self.ack_due(p.who.pid, p.seq);
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
            n.portid,
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
                sender_until: (wait > Duration::ZERO && n.portid != 0).then(|| now + SENDER_WAIT),
            },
        );
    }

    /// Whether a notification waiting for a kernel hook's record waits on:
    /// its sender is alive, so the syscall that made the change may not
    /// have returned (the record is written as the function returns, after
    /// the notification went out; a vCPU or a task descheduled there can
    /// take longer than `KERNEL_NOTIFY_WAIT`). A sender that exited has
    /// returned from every syscall, its records are in the ring.
    pub(super) fn sender_busy(&self, o: &super::Orphan, now: Instant) -> bool {
        o.sender_until
            .is_some_and(|until| now < until && (self.sender_alive)(o.portid))
    }

    /// The outcome of a notification no request or record claimed.
    pub(super) fn unclaimed(&self, o: Orphan, now: Instant) -> Outcome {
        let mut out = Outcome::new(Source::Netlink, o.op, o.netns, o.object);
        out.result = ok();
        out.nl_seq = nonzero(o.seq);
        out.replaced = o.replaced;
        out.seen = Some(o.seen);
        if o.seq != 0 || o.portid != 0 {
            // A request made it: one the tracer did not see.
            out.note = Some(Note::UnseenRequest {
                seq: o.seq,
                portid: o.portid,
            });
            return out;
        }
        // No request: the kernel made it, after some action on its device.
        let devs = match &out.object {
            Object::Route(r) => super::causes::route_devs(r),
            Object::Nexthop(n) => n.ifindex.into_iter().collect(),
            Object::Rule(_) => Vec::new(),
        };
        match self.causes.explaining(o.netns, o.op, &devs, now) {
            Some(c) => {
                out.who = Some(c.who);
                out.ts_boot_ns = None;
                out.source = c.source;
                out.cause = Some(c.cause);
                out.note = Some(Note::KernelAfter(c.cause));
            }
            None => {
                out.cause = Some(Cause::Unknown);
                out.note = Some(Note::Unexplained);
            }
        }
        out
    }
}
