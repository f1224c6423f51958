//! `ip link del d2` deletes its veth peer p2 too: p2 goes down, its IPv6
//! routes go, then both RTM_DELLINKs. p2's routes are the deletion's,
//! whether the deletion's request is read before p2's notifications or
//! after them (they come by different ways); a link going down later, with
//! no request, is not.
use std::time::{Duration, Instant};

use super::*;
use crate::collect::task::Task;
use crate::netlink::decode::{LinkChange, NlItem, NlObj};
use causes::RecentCause;

const NS: u32 = 7;

/// Link `if<ifindex>` notified up or down.
pub(super) fn link(ifindex: u32, up: bool) -> NlItem {
    NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Link(LinkChange {
            deleted: false,
            ifindex,
            name: Some(format!("if{ifindex}")),
            up: Some(up),
        }),
    }
}

/// The kernel's removal of an IPv6 route on `ifindex`, which no request
/// named.
fn removed_on(ifindex: u32) -> NlItem {
    NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Route {
            op: Op::Del,
            route: Route {
                family: Some(Family::Inet6),
                table: Some(254),
                rtype: Some("unicast".into()),
                dst: Some(format!("fd0{ifindex}::/64")),
                ifindex: Some(ifindex),
                metric: Some(256),
                ..Route::default()
            },
        },
    }
}

/// The request `ip link del if5` (pid 900), as read at its syscall.
fn deletion(e: &mut Engine, at: Instant) {
    e.causes.note(
        NS,
        RecentCause {
            cause: Cause::LinkDel,
            who: Task::named(900, NS, "ip"),
            source: Source::Tracepoint,
            at,
            ifindex: Some(5),
        },
    );
}

/// The correlator's tick after both inputs are drained (each link going
/// down plans a re-read of the IPv4 routes; none here).
fn settle(e: &mut Engine, at: Instant) -> Vec<Outcome> {
    let now = at + Duration::from_millis(100);
    for (ns, causes) in e.tick(now) {
        e.resync(ns, causes, now, |_| Ok(())).unwrap();
    }
    e.take_outcomes()
}

fn peer_case(request_first: bool) {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    for i in [5, 6, 7] {
        e.notification(NS, link(i, true), t);
    }
    if request_first {
        deletion(&mut e, t);
    }
    e.notification(NS, link(6, false), t);
    e.notification(NS, removed_on(6), t);
    if !request_first {
        deletion(&mut e, t + Duration::from_millis(5));
    }
    let out = settle(&mut e, t);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::LinkDel), "{out:?}");
    assert_eq!(out[0].who.map(|w| w.pid), Some(900));
    // Two seconds later, if7 goes down with nothing asking: unexplained.
    let later = t + Duration::from_secs(2);
    e.notification(NS, link(7, false), later);
    e.notification(NS, removed_on(7), later);
    let out = settle(&mut e, later);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::Unknown), "{out:?}");
    assert_eq!(out[0].who, None);
}

#[test]
fn a_deleted_links_peer_takes_its_routes_with_the_deletion_read_first() {
    peer_case(true);
}

/// The order CI met (stop 24): p2's notifications were handled before the
/// ring buffer gave the deletion's request, and p2's routes were reported
/// removed "after unknown".
#[test]
fn a_deleted_links_peer_takes_its_routes_with_the_deletion_read_after() {
    peer_case(false);
}

/// A link that went down unexplained long before a deletion is not its
/// peer.
#[test]
fn a_link_down_long_before_a_deletion_is_not_its_peer() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    for i in [5, 6] {
        e.notification(NS, link(i, true), t);
    }
    e.notification(NS, link(6, false), t);
    deletion(&mut e, t + Duration::from_secs(2));
    e.notification(NS, removed_on(6), t + Duration::from_secs(2));
    let out = settle(&mut e, t + Duration::from_secs(2));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::Unknown), "{out:?}");
}
