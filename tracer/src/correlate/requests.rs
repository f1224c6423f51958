//! Requests read at syscalls (the tracepoint path): each waits for the
//! notification that describes its outcome, or the ack that says it failed.
use std::time::Instant;

use crate::collect::task::Task;

use super::{
    ACKED_WAIT, Engine, NLM_F_ACK, Object, Outcome, Pending, REQUEST_WAIT, causes::RecentCause,
    loosely_alike, merge, objects_match, ok,
};
use crate::{
    collect::kernel_event::NlCopy,
    event::{Cause, Op, Source},
    netlink::decode::{NlObj, decode_buffer},
};

impl Engine {
    pub(super) fn request(&mut self, copy: NlCopy, now: Instant) {
        let (items, errors) = decode_buffer(&copy.data);
        for e in errors {
            log::warn!("request by pid {} not fully decoded: {e}", copy.task.pid);
        }
        let netns = copy.task.netns;
        for item in items {
            // Route, rule and nexthop requests wait for their outcome; link and
            // address requests only explain what the kernel does next.
            let cause = match &item.obj {
                NlObj::Link(l) if l.deleted => Some((Cause::LinkDel, self.link_index(netns, l))),
                NlObj::Link(l) if l.up == Some(false) => {
                    Some((Cause::LinkDown, self.link_index(netns, l)))
                }
                NlObj::Link(l) if l.up == Some(true) => {
                    Some((Cause::LinkUp, self.link_index(netns, l)))
                }
                NlObj::Addr { op, ifindex, .. } => Some((
                    if *op == Op::Del {
                        Cause::AddrDel
                    } else {
                        Cause::AddrAdd
                    },
                    (*ifindex != 0).then_some(*ifindex),
                )),
                _ => None,
            };
            match item.obj {
                NlObj::Route { op, route } => {
                    let r = Object::Route(route);
                    self.add_request_flags(&copy.task, netns, op, r, item.seq, item.flags, now);
                }
                NlObj::Rule { op, rule } => {
                    let r = Object::Rule(rule);
                    self.add_request_flags(&copy.task, netns, op, r, item.seq, item.flags, now);
                }
                NlObj::Nexthop { op, nexthop } => {
                    let n = Object::Nexthop(nexthop);
                    self.add_request_flags(&copy.task, netns, op, n, item.seq, item.flags, now);
                }
                _ => {}
            }
            // A link or address request that names no device changes none
            // (iproute2 sends an empty RTM_NEWLINK to probe the kernel):
            // it explains nothing.
            if let Some((cause, ifindex @ Some(_))) = cause {
                self.causes.note(
                    netns,
                    RecentCause {
                        cause,
                        who: copy.task,
                        source: Source::Tracepoint,
                        at: now,
                        ifindex,
                    },
                );
            }
        }
    }

    /// The interface index a link request names: its own, or the one its
    /// name has in the namespace's mirror (a request may name the link by
    /// IFLA_IFNAME alone).
    fn link_index(&mut self, netns: u32, l: &crate::netlink::decode::LinkChange) -> Option<u32> {
        if l.ifindex != 0 {
            return Some(l.ifindex);
        }
        let name = l.name.as_deref()?;
        self.mirror_of(netns)?
            .links
            .iter()
            .find(|(_, k)| k.name.as_deref() == Some(name))
            .map(|(i, _)| *i)
    }

    #[cfg(test)]
    pub(super) fn add_request(
        &mut self,
        who: &Task,
        netns: u32,
        op: Op,
        object: Object,
        seq: u32,
        now: Instant,
    ) {
        self.add_request_flags(who, netns, op, object, seq, NLM_F_ACK, now);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_request_flags(
        &mut self,
        who: &Task,
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
            .first_for(seq, who.pid, |o| {
                o.netns == netns && o.op == op && objects_match(&object, &o.object)
            })
            .or_else(|| {
                (seq != 0)
                    .then(|| {
                        self.orphans.first_for(seq, who.pid, |o| {
                            o.netns == netns
                                && o.op == op
                                && o.portid != 0
                                && loosely_alike(&object, &o.object)
                        })
                    })
                    .flatten()
            });
        if let Some(id) = found {
            if wants_ack {
                self.ack_due(who.pid, seq);
            }
            let o = self.orphans.take(id).expect("id just found");
            let mut out = Outcome::new(Source::Tracepoint, op, netns, merge(object, o.object));
            out.order = Some(self.pending.next_id());
            out.who = Some(*who);
            out.ts_boot_ns = Some(who.ts_ns);
            out.result = ok();
            out.nl_seq = Some(seq);
            out.replaced = o.replaced;
            self.emit(out);
            return;
        }
        let unwatched = !self.watched(netns);
        self.pending.push(
            seq,
            who.pid,
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
                unwatched,
            },
        );
    }

    /// An ack still to come for a request of `pid` with `seq` that was
    /// already reported from its notification (bounded: under a flood the
    /// oldest expectations are dropped rather than kept for ever).
    pub(super) fn ack_due(&mut self, pid: u32, seq: u32) {
        if self.acks_due.len() > 4096 {
            self.acks_due.clear();
        }
        *self.acks_due.entry((pid, seq)).or_default() += 1;
    }

    pub(super) fn ack(&mut self, hdr: &Task, error: i32, seq: u32, now: Instant) {
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
        let Some(id) = self
            .pending
            .first_from(seq, hdr.pid, |p| !p.from_kernel && p.result.is_none())
        else {
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
}
