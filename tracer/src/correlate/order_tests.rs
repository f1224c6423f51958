//! Request forms and order: replacements, kernel-made additions and their
//! causes, notifications no request claims, and a flush's re-read ahead of
//! what came after it.
use std::time::{Duration, Instant};

use super::*;
use crate::collect::task::Task;
use crate::netlink::decode::{LinkChange, NlItem, NlObj};

fn hdr(pid: u32) -> Task {
    Task::named(pid, 7, "ip")
}

fn route(dst: &str, gw: Option<&str>, rtype: &str) -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(52),
        rtype: Some(rtype.to_string().into()),
        dst: Some(dst.into()),
        gateway: gw.map(String::from),
        protocol: Some("boot".into()),
        scope: Some("global".into()),
        ..Route::default()
    }
}

fn item(seq: u32, portid: u32, flags: u16, obj: NlObj) -> NlItem {
    NlItem {
        seq,
        portid,
        flags,
        obj,
    }
}

fn add(e: &mut Engine, pid: u32, seq: u32, r: Route, t: Instant) {
    e.add_request(&hdr(pid), 7, Op::Add, Object::Route(r), seq, t);
}

/// An engine for the kprobe/fentry paths: no change attributed from
/// requests, and IPv4 flushes found from link and address notifications.
fn kernel_hook_engine() -> Engine {
    Engine::new(RequestScope {
        flush_from_notifications: true,
        ..RequestScope::default()
    })
}

/// The notification of route `r` added by request `seq` of `portid` (0
/// and 0 for a route the kernel added on its own).
fn notify_add(e: &mut Engine, seq: u32, portid: u32, r: Route, t: Instant) {
    e.notification(
        7,
        item(
            seq,
            portid,
            0,
            NlObj::Route {
                op: Op::Add,
                route: r,
            },
        ),
        t,
    );
}

/// A, B and C of `add A; del B; add C` sent in one datagram: three
/// blackhole routes.
fn three_routes() -> (Route, Route, Route) {
    (
        route("10.85.0.0/16", None, "blackhole"),
        route("10.86.0.0/16", None, "blackhole"),
        route("10.87.0.0/16", None, "blackhole"),
    )
}

/// The notification of route `r` replacing another, by request `seq` of
/// `portid` (the kernel flags it NLM_F_REPLACE).
fn notify_replace(e: &mut Engine, seq: u32, portid: u32, r: Route, t: Instant) {
    e.notification(
        7,
        item(
            seq,
            portid,
            NLM_F_REPLACE,
            NlObj::Route {
                op: Op::Add,
                route: r,
            },
        ),
        t,
    );
}

#[test]
fn a_replacement_names_the_route_it_replaced() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    let old = route("10.9.0.0/16", Some("192.0.2.2"), "unicast");
    add(&mut e, 10, 1, old.clone(), t);
    notify_add(&mut e, 1, 10, old, t);
    e.take_outcomes();
    // `ip route replace 10.9.0.0/16 via 192.0.2.3 table 52`.
    let new = route("10.9.0.0/16", Some("192.0.2.3"), "unicast");
    add(&mut e, 11, 2, new.clone(), t);
    notify_replace(&mut e, 2, 11, new, t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].who.unwrap().pid, 11);
    let Some(Object::Route(old)) = out[0].replaced.as_ref() else {
        panic!("the replaced route: {out:?}")
    };
    assert_eq!(old.gateway.as_deref(), Some("192.0.2.2"));
    let Object::Route(r) = &out[0].object else {
        panic!()
    };
    assert_eq!(r.gateway.as_deref(), Some("192.0.2.3"));
}

#[test]
fn a_replacement_of_a_route_the_mirror_lost_is_still_a_replacement() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    // The mirror never held 10.9.0.0/16 (a re-read while behind took it
    // out): the kernel's NLM_F_REPLACE still says a route was replaced.
    let new = route("10.9.0.0/16", Some("192.0.2.3"), "unicast");
    add(&mut e, 11, 2, new.clone(), t);
    notify_replace(&mut e, 2, 11, new, t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    let Some(Object::Route(old)) = out[0].replaced.as_ref() else {
        panic!("a replacement: {out:?}")
    };
    assert_eq!(old.dst.as_deref(), Some("10.9.0.0/16"));
    assert_eq!(old.table, Some(52));
    assert_eq!(old.gateway, None, "not known");
}

#[test]
fn an_unclaimed_notification_of_a_request_is_reported_at_the_next_tick_with_why() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    let r = route("10.1.0.0/16", None, "blackhole");
    notify_add(&mut e, 9, 4242, r, t);
    assert!(
        e.take_outcomes().is_empty(),
        "its request may still be queued"
    );
    let _ = e.tick(t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert!(out[0].who.is_none());
    assert_eq!(out[0].cause, None);
    assert_eq!(out[0].seen, Some(t));
    assert_eq!(
        out[0].note,
        Some(Note::UnseenRequest {
            seq: 9,
            portid: 4242
        })
    );
}

#[test]
fn routes_the_kernel_adds_for_an_address_are_credited_to_addr_add() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    e.causes.note(
        7,
        causes::RecentCause {
            cause: Cause::AddrAdd,
            who: hdr(77),
            source: Source::Tracepoint,
            at: t,
            ifindex: None,
        },
    );
    // A removal cause does not explain an addition, and the other way round.
    e.causes.note(
        7,
        causes::RecentCause {
            cause: Cause::LinkDown,
            who: hdr(78),
            source: Source::Tracepoint,
            at: t,
            ifindex: None,
        },
    );
    let local = route("192.0.2.1/32", None, "local");
    notify_add(&mut e, 0, 0, local, t);
    let _ = e.tick(t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cause, Some(Cause::AddrAdd));
    assert_eq!(out[0].who.unwrap().pid, 77);
    assert_eq!(out[0].note, Some(Note::KernelAfter(Cause::AddrAdd)));
}

#[test]
fn a_kernel_addition_nothing_explains_has_cause_unknown() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    let r = route("fe80::/64", None, "unicast");
    notify_add(&mut e, 0, 0, r, t);
    let _ = e.tick(t);
    let out = e.take_outcomes();
    assert_eq!(out[0].cause, Some(Cause::Unknown));
    assert!(out[0].who.is_none());
    assert_eq!(out[0].note, Some(Note::Unexplained));
}

#[test]
fn a_kernel_hook_notification_waits_briefly_for_its_record() {
    let mut e = kernel_hook_engine();
    let t = Instant::now();
    let r = route("10.1.0.0/16", None, "blackhole");
    notify_add(&mut e, 9, 10, r, t);
    let _ = e.tick(t);
    assert!(e.take_outcomes().is_empty());
    let _ = e.tick(t + KERNEL_NOTIFY_WAIT);
    assert_eq!(e.take_outcomes().len(), 1);
}

#[test]
fn a_request_read_differently_still_pairs_by_sequence_number() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    // The request named table 100, the kernel says 52 (a form decoded
    // loosely): same sequence number, namespace, operation and kind.
    let mut req = route("10.1.0.0/16", None, "unspec");
    req.table = Some(100);
    add(&mut e, 10, 3, req, t);
    let r = route("10.1.0.0/16", None, "blackhole");
    notify_add(&mut e, 3, 10, r, t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].who.unwrap().pid, 10);
    assert_eq!(e.backlog(), 0);
}

#[test]
fn changes_after_a_flush_wait_for_its_re_read() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    let link = |up| {
        item(
            0,
            0,
            0,
            NlObj::Link(LinkChange {
                deleted: false,
                ifindex: 2,
                name: Some("v0".into()),
                up: Some(up),
            }),
        )
    };
    e.notification(7, link(true), t);
    let lan = Route {
        ifindex: Some(2),
        ..route("192.0.2.0/24", None, "unicast")
    };
    notify_add(&mut e, 0, 0, lan, t);
    let _ = e.tick(t);
    e.take_outcomes();
    // Link down (a flush of 192.0.2.0/24 with no notification), then a
    // rule added before the re-read runs.
    e.notification(7, link(false), t);
    let rule = Rule {
        family: Some(Family::Inet),
        priority: Some(5270),
        table: Some(52),
        ..Rule::default()
    };
    e.add_request(
        &hdr(12),
        7,
        Op::Add,
        Object::Rule(Box::new(rule.clone())),
        4,
        t,
    );
    e.notification(
        7,
        item(
            4,
            12,
            0,
            NlObj::Rule {
                op: Op::Add,
                rule: Box::new(rule),
            },
        ),
        t,
    );
    assert!(e.take_outcomes().is_empty(), "held for the re-read");
    let due = e.tick(t + Duration::from_secs(1));
    assert_eq!(due.len(), 1);
    e.resync(7, due[0].1.clone(), t + Duration::from_secs(1), |_| Ok(()))
        .unwrap();
    let out = e.take_outcomes();
    let kinds: Vec<(Op, bool)> = out
        .iter()
        .map(|o| (o.op, matches!(o.object, Object::Rule(_))))
        .collect();
    assert_eq!(kinds, [(Op::Del, false), (Op::Add, true)], "{out:?}");
}

/// `add A; del B (fails); add C` in one datagram: B's error ack is read
/// before A's notification, and still B is reported between A and C.
#[test]
fn a_failed_message_of_a_datagram_is_reported_in_its_place() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    let (a, b, c) = three_routes();
    add(&mut e, 10, 53, a.clone(), t);
    e.add_request(&hdr(10), 7, Op::Del, Object::Route(b), 54, t);
    add(&mut e, 10, 55, c.clone(), t);
    e.ack(&hdr(10), -libc::ESRCH, 54, t);
    assert!(e.take_outcomes().is_empty(), "B waits behind A");
    notify_add(&mut e, 53, 10, a, t);
    notify_add(&mut e, 55, 10, c, t);
    let seqs: Vec<Option<u32>> = e.take_outcomes().iter().map(|o| o.nl_seq).collect();
    assert_eq!(seqs, [Some(53), Some(54), Some(55)]);
}

/// The same datagram on the kprobe/fentry paths: the failed delete's
/// record comes at once (fib_table_delete returned ESRCH), while the add
/// before it waits for its notification.
#[test]
fn a_failed_kernel_record_waits_behind_the_senders_earlier_change() {
    let mut e = kernel_hook_engine();
    let t = Instant::now();
    let mut h = hdr(10);
    h.source = Source::Kprobe;
    let (a, b, _) = three_routes();
    e.kernel_change(&h, Op::Add, Object::Route(a.clone()), 53, 0, t);
    e.kernel_change(&h, Op::Del, Object::Route(b), 54, -libc::ESRCH, t);
    assert!(
        e.take_outcomes().is_empty(),
        "the failure waits behind the add"
    );
    notify_add(&mut e, 53, 10, a, t);
    let seqs: Vec<Option<u32>> = e.take_outcomes().iter().map(|o| o.nl_seq).collect();
    assert_eq!(seqs, [Some(53), Some(54)]);
}

/// `add A; del B (fails); add C` on the fentry path: B's record comes
/// while A waits for its notification and before C's record; B must not
/// end up behind C.
#[test]
fn a_failed_kernel_record_keeps_its_place_before_later_records() {
    let mut e = kernel_hook_engine();
    let t = Instant::now();
    let mut h = hdr(10);
    h.source = Source::Fentry;
    let (a, b, c) = three_routes();
    e.kernel_change(&h, Op::Add, Object::Route(a.clone()), 1, 0, t);
    e.kernel_change(&h, Op::Del, Object::Route(b), 2, -libc::ESRCH, t);
    e.kernel_change(&h, Op::Add, Object::Route(c.clone()), 3, 0, t);
    notify_add(&mut e, 1, 10, a, t);
    notify_add(&mut e, 3, 10, c, t);
    let seqs: Vec<Option<u32>> = e.take_outcomes().iter().map(|o| o.nl_seq).collect();
    assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
}
