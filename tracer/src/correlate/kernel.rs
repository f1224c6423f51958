//! Records of the kernel hooks (kprobe/fentry): the function's own view of
//! a change, with its result; a successful one waits briefly for its
//! notification's details.
use std::time::Instant;

use crate::collect::task::Task;

use super::{Engine, NOTIFY_WAIT, Note, Object, Outcome, Pending, nonzero, objects_match};
use crate::{
    collect::kernel_event::{KernelRoute, NlCopy},
    event::{Cause, Family, Op},
    netlink::decode::{NlObj, decode_buffer},
};

/// (tid, sequence number, namespace, addition, table, prefix, metric) of an
/// IPv6 route record: a multipath request's siblings share it.
pub(super) type SiblingKey = (
    u32,
    u32,
    u32,
    bool,
    Option<u32>,
    Option<String>,
    Option<u32>,
);

impl Engine {
    /// A request message copied at an rtnetlink handler (rules and
    /// nexthops), with the handler's result.
    pub(super) fn kernel_rule(&mut self, copy: NlCopy, now: Instant) {
        let (items, errors) = decode_buffer(&copy.data);
        for e in errors {
            log::warn!("rule seen by a kernel hook not fully decoded: {e}");
        }
        for item in items {
            let (op, object) = match item.obj {
                NlObj::Rule { op, rule } => (op, Object::Rule(rule)),
                NlObj::Nexthop { op, nexthop } => (op, Object::Nexthop(nexthop)),
                _ => continue,
            };
            self.kernel_change(&copy.task, op, object, item.seq, copy.ret, now);
        }
    }

    pub(super) fn kernel_route(&mut self, r: KernelRoute, now: Instant) {
        // The kernel's own attempt that failed changed nothing (on 5.10,
        // link down runs fib6_del again on local routes already gone:
        // ENOENT). A request's failure is reported.
        if !r.requested && r.ret != 0 {
            log::debug!(
                "the kernel's own {:?} of {:?} failed ({}): nothing changed",
                r.op,
                r.route.dst,
                r.ret
            );
            return;
        }
        // An IPv6 route removed with its nexthop object, reported already
        // with the object's deletion.
        if r.op == Op::Del && r.ret == 0 && self.expected_route_record(r.task.netns, &r.route) {
            return;
        }
        self.kernel_change(&r.task, r.op, Object::Route(r.route), r.nl_seq, r.ret, now);
    }

    pub(super) fn kernel_change(
        &mut self,
        task: &Task,
        op: Op,
        object: Object,
        seq: u32,
        ret: i32,
        now: Instant,
    ) {
        let source = task.source;
        let netns = task.netns;
        let unwatched = !self.watched(netns);
        let p = Pending {
            deadline: now + NOTIFY_WAIT,
            source,
            op,
            netns,
            who: *task,
            object,
            seq,
            from_kernel: true,
            result: Some(ret),
            wants_ack: false,
            unwatched,
        };
        if ret != 0 {
            let mut o = Pending::outcome(p, None, Some(ret), nonzero(seq));
            o.order = Some(self.pending.next_id());
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
                task.tid,
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
            out.order = Some(self.pending.next_id());
            out.replaced = o.replaced;
            let out = self.with_kernel_cause(out, now);
            self.emit(out);
            return;
        }
        self.pending.push(seq, p.who.pid, false, p);
    }

    /// A change a kernel hook saw with no netlink request behind it (seq 0
    /// and not from a netlink handler) gets its cause and note.
    pub(super) fn with_kernel_cause(&self, mut o: Outcome, now: Instant) -> Outcome {
        if o.cause.is_none() {
            return o;
        }
        let Some(who) = o.who else { return o };
        let c = self.causes.for_task(&who, o.op, o.source, now);
        o.cause = Some(c.cause);
        if o.note.is_none() {
            o.note = Some(match c.cause {
                Cause::Unknown => Note::Unexplained,
                Cause::NetnsExit => return o,
                cause => Note::KernelAfter(cause),
            });
        }
        o
    }
}
