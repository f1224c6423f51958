//! Records of the kernel hooks (kprobe/fentry): the function's own view of
//! a change, with its result; a successful one waits briefly for its
//! notification's details.
use std::time::Instant;

use tracer_common::EventHeader;

use super::{Engine, NOTIFY_WAIT, Object, Outcome, Pending, causes, nonzero, objects_match};
use crate::{
    collect::record::{NlCopy, source_of},
    event::{Cause, Family, Op, Route, Source},
    netlink::{
        decode::{NlObj, decode_buffer},
        names,
    },
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
    pub(super) fn kernel_rule(&mut self, copy: NlCopy, now: Instant) {
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

    pub(super) fn kernel_route(&mut self, r: &tracer_common::RouteEvent, now: Instant) {
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
    pub(super) fn kernel_change(
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
            out.order = Some(self.pending.next_id());
            out.replaced = o.replaced;
            let out = self.with_kernel_cause(out, now);
            self.emit(out);
            return;
        }
        self.pending.push(seq, false, p);
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
                Cause::Unknown => causes::unexplained(o.op),
                Cause::NetnsExit => return o,
                cause => causes::after(cause, o.op),
            });
        }
        o
    }
}

/// The route a kernel hook saw.
pub(super) fn route_from_kernel(r: &tracer_common::RouteEvent) -> Route {
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
