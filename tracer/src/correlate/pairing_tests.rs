//! Pairing a request with its notification or error ack and the kernel's
//! record into one change, in either order; requests that expire; removals
//! found by the re-read after a link went down or after an overflow.
use std::time::{Duration, Instant};

use super::peer_tests::link;
use super::*;
use crate::collect::{kernel_event::KernelRoute, task::Task};
use crate::netlink::decode::{LinkChange, NlItem, NlObj};
use causes::RecentCause;

fn hdr(pid: u32, netns: u32) -> Task {
    Task::named(pid, netns, "ip")
}

/// `throw 192.168.1.0/24 table TABLE proto boot`, as a notification
/// describes it (also used by `matching`'s tests).
pub(super) fn throw(table: u32) -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(table),
        rtype: Some("throw".into()),
        dst: Some("192.168.1.0/24".into()),
        protocol: Some("boot".into()),
        ..Route::default()
    }
}

fn sparse_del() -> Route {
    Route {
        rtype: Some("unspec".into()),
        protocol: Some("unspec".into()),
        ..throw(52)
    }
}

fn tracepoint_engine() -> Engine {
    Engine::new(RequestScope::all())
}

fn note(seq: u32, op: Op, route: Route) -> NlItem {
    NlItem {
        seq,
        portid: 99,
        flags: 0,
        obj: NlObj::Route { op, route },
    }
}

/// Feed a request as the tracepoint program would have copied it.
fn request(e: &mut Engine, who: Task, seq: u32, op: Op, route: Route, now: Instant) {
    e.add_request(&who, who.netns, op, Object::Route(route), seq, now);
}

#[test]
fn request_then_notification_gives_one_full_event() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    request(&mut e, hdr(812, 7), 5, Op::Del, sparse_del(), t);
    e.notification(7, note(5, Op::Del, throw(52)), t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.who.unwrap().pid, 812);
    assert_eq!(o.result.as_deref(), Some("ok"));
    let Object::Route(r) = &o.object else {
        panic!()
    };
    assert_eq!(
        r.rtype.as_deref(),
        Some("throw"),
        "details come from the notification"
    );
    assert_eq!(o.nl_seq, Some(5));
    assert_eq!(e.backlog(), 0);
}

#[test]
fn notification_before_request_still_matches() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    e.notification(7, note(5, Op::Del, throw(52)), t);
    assert!(e.take_outcomes().is_empty());
    request(
        &mut e,
        hdr(812, 7),
        5,
        Op::Del,
        sparse_del(),
        t + Duration::from_millis(5),
    );
    assert_eq!(e.take_outcomes().len(), 1);
}

#[test]
fn error_ack_reports_the_kernel_error() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    let who = hdr(900, 7);
    request(&mut e, who, 6, Op::Del, sparse_del(), t);
    e.ack(&who, -libc::ESRCH, 6, t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].result.as_deref(), Some("ESRCH"));
}

#[test]
fn unanswered_request_expires_with_unknown_result() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    request(&mut e, hdr(900, 7), 6, Op::Del, sparse_del(), t);
    let _ = e.tick(t + Duration::from_millis(100));
    assert!(e.take_outcomes().is_empty());
    let _ = e.tick(t + REQUEST_WAIT);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].result, None);
    assert_eq!(out[0].note, Some(Note::NoOutcome { watched: false }));
}

#[test]
fn kernel_record_takes_details_from_notification() {
    let mut e = Engine::new(RequestScope::default());
    let t = Instant::now();
    let mut h = hdr(812, 7);
    h.source = Source::Kprobe;
    // As collect::kernel_event decodes a bare deletion record.
    let rec = KernelRoute {
        task: h,
        op: Op::Del,
        route: Route {
            family: Some(Family::Inet),
            table: Some(52),
            rtype: Some(names::route_type(0)),
            dst: Some("192.168.1.0/24".into()),
            protocol: Some(names::protocol(0)),
            scope: Some(names::scope(0)),
            ..Route::default()
        },
        nl_seq: 5,
        ret: 0,
        requested: true,
    };
    e.kernel_route(rec, t);
    e.notification(7, note(5, Op::Del, throw(52)), t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].source, Source::Kprobe);
    let Object::Route(r) = &out[0].object else {
        panic!()
    };
    assert_eq!(r.rtype.as_deref(), Some("throw"));
    assert_eq!(out[0].cause, None, "a requested removal has no cause");
}

#[test]
fn link_down_resync_names_vanished_routes_and_the_process() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    let link = |up| NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Link(LinkChange {
            deleted: false,
            ifindex: 2,
            name: Some("enp1s0".into()),
            up: Some(up),
        }),
    };
    e.notification(7, link(true), t);
    let lan = Route {
        rtype: Some("unicast".into()),
        dst: Some("192.168.1.0/24".into()),
        table: Some(254),
        ifindex: Some(2),
        ..throw(254)
    };
    e.notification(7, note(0, Op::Add, lan.clone()), t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    // `ip link set enp1s0 down`, read at sendmsg, then the link notification.
    let who = hdr(1234, 7);
    e.causes.note(
        7,
        RecentCause {
            cause: Cause::LinkDown,
            who,
            source: Source::Tracepoint,
            at: t + Duration::from_secs(2),
            ifindex: None,
        },
    );
    e.notification(7, link(false), t + Duration::from_secs(2));
    let due = e.tick(t + Duration::from_secs(3));
    assert_eq!(due.len(), 1);
    let (ns, cause) = due[0].clone();
    assert_eq!(ns, 7);
    e.resync(7, cause, t + Duration::from_secs(3), |_| Ok(()))
        .unwrap();
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cause, Some(Cause::LinkDown));
    assert_eq!(out[0].who.unwrap().pid, 1234);
    let Object::Route(r) = &out[0].object else {
        panic!()
    };
    assert_eq!(r.dev.as_deref(), Some("enp1s0"));
}

#[test]
fn overflow_recovery_names_removals_with_their_requests() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    e.notification(7, note(0, Op::Add, throw(52)), t);
    e.notification(7, note(0, Op::Add, throw(53)), t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    // Both are removed, but the kernel drops both notifications; only the
    // first removal's request was seen.
    request(&mut e, hdr(812, 7), 5, Op::Del, sparse_del(), t);
    let found = recover_empty(&mut e, t);
    assert_eq!(found, 2);
    // The one with a request at once; the other once the inputs that may
    // still name it have had their time.
    let mut out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    // The notification of a removal already reported, still queued in the
    // socket, is dropped.
    e.notification(7, note(5, Op::Del, throw(52)), t);
    let _ = e.tick(t + Duration::from_secs(4));
    out.extend(e.take_outcomes());
    assert_eq!(out.len(), 2);
    let by_table = |t: u32| {
        out.iter()
            .find(|o| matches!(&o.object, Object::Route(r) if r.table == Some(t)))
            .unwrap()
    };
    assert_eq!(by_table(52).who.unwrap().pid, 812);
    assert_eq!(by_table(52).nl_seq, Some(5));
    assert!(by_table(53).who.is_none());
    assert!(out.iter().all(|o| o.note == Some(Note::Recovered)));
    assert_eq!(e.backlog(), 0);
}

/// Overflow recovery in namespace 7 whose re-read finds no route: every
/// route the mirror has is gone.
fn recover_empty(e: &mut Engine, t: Instant) -> usize {
    e.recover(7, t, |_| Ok(())).unwrap()
}

#[test]
fn a_removal_found_by_recovery_is_reported_once_when_its_request_comes_later() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    e.notification(7, note(0, Op::Add, throw(52)), t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    // The removal's notification is dropped; the re-read finds it gone
    // before its request (still in the ring buffer) is read.
    let found = recover_empty(&mut e, t);
    assert_eq!(found, 1);
    assert!(e.take_outcomes().is_empty());
    request(&mut e, hdr(812, 7), 5, Op::Del, sparse_del(), t);
    e.ack(&hdr(812, 7), 0, 5, t);
    for s in 2..8 {
        let _ = e.tick(t + Duration::from_secs(s));
    }
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].who.unwrap().pid, 812);
    assert_eq!(out[0].result.as_deref(), Some("ok"));
}

#[test]
fn an_acknowledged_request_in_an_unwatched_namespace_says_so() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    // Namespace 8 appeared and was changed before the tracer watched it:
    // its notification was never read.
    request(&mut e, hdr(812, 8), 5, Op::Del, sparse_del(), t);
    e.ack(&hdr(812, 8), 0, 5, t);
    // Namespace 7 is watched: an ack with no notification is just late.
    let _ = e.mirror(7);
    request(&mut e, hdr(813, 7), 6, Op::Del, sparse_del(), t);
    e.ack(&hdr(813, 7), 0, 6, t);
    for s in 1..4 {
        let _ = e.tick(t + Duration::from_secs(s));
    }
    let out = e.take_outcomes();
    assert_eq!(out.len(), 2, "{out:?}");
    let unwatched = out.iter().find(|o| o.netns == 8).unwrap();
    assert_eq!(unwatched.result.as_deref(), Some("ok"));
    assert_eq!(unwatched.note, Some(Note::UnwatchedAcked));
    let watched = out.iter().find(|o| o.netns == 7).unwrap();
    assert_eq!(watched.note, None);
}

/// A kernel hook's failed call: reported when a request made it (the
/// sender's error), dropped when it was the kernel's own attempt, which
/// changed nothing (5.10's fib6_del of local routes already gone, ENOENT).
#[test]
fn only_a_requests_failure_is_a_change() {
    let mut e = Engine::new(RequestScope::default());
    let t = Instant::now();
    let mut h = hdr(812, 7);
    h.source = Source::Kprobe;
    let rec = |requested, nl_seq| KernelRoute {
        task: h,
        op: Op::Del,
        route: throw(52),
        nl_seq,
        ret: -2,
        requested,
    };
    e.kernel_route(rec(false, 0), t);
    assert!(e.take_outcomes().is_empty());
    e.kernel_route(rec(true, 9), t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].result.as_deref(), Some("ENOENT"));
}

/// A re-read after a flush on another device finds a route gone whose
/// removal request's notification is still queued (seen on 5.10 under
/// QEMU): the removal is reported once, from its request and notification,
/// not first as unexplained.
#[test]
fn a_re_read_that_races_a_removal_leaves_it_to_its_notification() {
    for request_first in [true, false] {
        let mut e = tracepoint_engine();
        let t = Instant::now();
        e.notification(7, link(2, true), t);
        e.notification(7, link(3, true), t);
        let default = Route {
            rtype: Some("unicast".into()),
            dst: Some("0.0.0.0/0".into()),
            ifindex: Some(3),
            ..throw(52)
        };
        e.notification(7, note(0, Op::Add, default.clone()), t);
        let _ = e.tick(t + Duration::from_secs(1));
        e.take_outcomes();
        // if2 goes down (a flush); `ip route del default table 52 dev if3`
        // runs before the re-read, which no longer finds the route.
        let t = t + Duration::from_secs(2);
        e.notification(7, link(2, false), t);
        if request_first {
            request(&mut e, hdr(812, 7), 9, Op::Del, default.clone(), t);
        }
        let now = t + Duration::from_millis(100);
        for (ns, causes) in e.tick(now) {
            e.resync(ns, causes, now, |_| Ok(())).unwrap();
        }
        assert!(
            e.take_outcomes().is_empty(),
            "nothing yet: request_first {request_first}"
        );
        if !request_first {
            request(&mut e, hdr(812, 7), 9, Op::Del, default.clone(), now);
        }
        e.notification(7, note(9, Op::Del, default.clone()), now);
        let _ = e.tick(now + Duration::from_secs(5));
        let out = e.take_outcomes();
        assert_eq!(out.len(), 1, "request_first {request_first}: {out:?}");
        assert_eq!(out[0].who.unwrap().pid, 812);
        assert_eq!(out[0].cause, None);
        assert_eq!(out[0].note, None);
    }
}

/// A route gone from a re-read with nothing to explain it and nothing
/// claiming it is reported as unexplained once the wait is over.
#[test]
fn an_unclaimed_silent_removal_is_reported_unexplained_after_the_wait() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    e.notification(7, note(0, Op::Add, throw(52)), t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    let causes = FlushCauses::default();
    let now = t + Duration::from_secs(2);
    e.resync(7, causes, now, |_| Ok(())).unwrap();
    assert!(e.take_outcomes().is_empty(), "it waits for a claim");
    let _ = e.tick(now + recovery::RECOVERY_WAIT - Duration::from_millis(1));
    assert!(e.take_outcomes().is_empty(), "still waiting");
    let _ = e.tick(now + recovery::RECOVERY_WAIT);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::Unknown));
    assert_eq!(out[0].note, Some(Note::FlushedUnexplained));
}

/// `ip link set v0 down` whose request is read from the ring buffer only
/// after the link's notification (the two inputs are read in either order):
/// the re-read, which runs once both are drained, still names the process.
#[test]
fn a_link_request_read_after_its_notification_still_explains_the_flush() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    let link = |up| NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Link(LinkChange {
            deleted: false,
            ifindex: 3,
            name: Some("v0".into()),
            up: Some(up),
        }),
    };
    e.notification(7, link(true), t);
    let default = Route {
        rtype: Some("unicast".into()),
        dst: Some("0.0.0.0/0".into()),
        ifindex: Some(3),
        ..throw(52)
    };
    e.notification(7, note(0, Op::Add, default), t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    let t = t + Duration::from_secs(2);
    e.notification(7, link(false), t);
    e.causes.note(
        7,
        RecentCause {
            cause: Cause::LinkDown,
            who: hdr(4321, 7),
            source: Source::Tracepoint,
            at: t + Duration::from_millis(5),
            ifindex: Some(3),
        },
    );
    let now = t + Duration::from_millis(100);
    for (ns, causes) in e.tick(now) {
        assert_eq!(causes.0.len(), 1, "the request read after the plan");
        e.resync(ns, causes, now, |_| Ok(())).unwrap();
    }
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::LinkDown));
    assert_eq!(out[0].who.unwrap().pid, 4321);
    assert_eq!(out[0].note, Some(Note::Flushed));
}

/// `unicast 10.66.N.0/24 table 100` as a dump describes it.
fn dumped(n: u8) -> crate::netlink::route_msg::RouteMsg {
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&[10, 66, n, 0]);
    crate::netlink::route_msg::RouteMsg {
        family: 2,
        dst_len: 24,
        table: 100,
        rtype: 1,
        protocol: 3,
        dst: Some(dst),
        oif: Some(2),
        ..Default::default()
    }
}

/// Additions whose notifications an overflow dropped are found by the
/// re-read and reported once each: with their request when it waits, from
/// their notification when it was only queued, else by themselves.
#[test]
fn overflow_recovery_reports_additions_whose_notifications_were_dropped() {
    let mut e = tracepoint_engine();
    let t = Instant::now();
    let route = |n| dumped(n).to_route();
    // Seen before the overflow: 10.66.0.0/24.
    e.notification(7, note(0, Op::Add, route(0)), t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    // 1 was requested (the request is read), 2 came from a process not
    // seen, 3's notification is still queued behind the overflow.
    request(&mut e, hdr(812, 7), 11, Op::Add, route(1), t);
    let found = e
        .recover(7, t, |each| {
            (0..4).for_each(|n| each(&dumped(n)));
            Ok(())
        })
        .unwrap();
    assert_eq!(found, 3);
    let mut out = e.take_outcomes();
    assert_eq!(out.len(), 1, "the requested one at once: {out:?}");
    assert_eq!(out[0].who.unwrap().pid, 812);
    assert_eq!(out[0].note, Some(Note::Recovered));
    // 1's notification was queued after all: dropped. 3's arrives.
    e.notification(7, note(11, Op::Add, route(1)), t);
    e.notification(7, note(0, Op::Add, route(3)), t);
    for s in 1..6 {
        let _ = e.tick(t + Duration::from_secs(s));
    }
    out.extend(e.take_outcomes());
    let dst = |o: &Outcome| match &o.object {
        Object::Route(r) => r.dst.clone().unwrap(),
        _ => panic!(),
    };
    let mut dsts: Vec<String> = out.iter().map(dst).collect();
    dsts.sort();
    assert_eq!(
        dsts,
        ["10.66.1.0/24", "10.66.2.0/24", "10.66.3.0/24"],
        "{out:?}"
    );
    assert!(out.iter().all(|o| o.op == Op::Add));
    let of = |d: &str| out.iter().find(|o| dst(o) == d).unwrap();
    assert_eq!(of("10.66.2.0/24").note, Some(Note::Recovered));
    assert!(of("10.66.2.0/24").who.is_none());
    assert_ne!(
        of("10.66.3.0/24").note,
        Some(Note::Recovered),
        "from its own notification"
    );
}
