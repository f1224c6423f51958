//! A change waits for its notification until its namespace's socket has
//! been read past the change's deadline: an acknowledged request's ack
//! (read from the ring buffer) can be read well before its notification
//! (read from the socket by another thread) when the tracer is behind.
use std::time::{Duration, Instant};

use super::pairing_tests::throw;
use super::*;
use crate::collect::task::Task;
use crate::netlink::decode::{NlItem, NlObj};

fn engine() -> Engine {
    Engine::new(RequestScope::all())
}

fn added(seq: u32) -> NlItem {
    NlItem {
        seq,
        portid: 812,
        flags: 0,
        obj: NlObj::Route {
            op: Op::Add,
            route: throw(52),
        },
    }
}

/// `ip` (pid 812) asks for `throw 192.168.1.0/24 table 52` in namespace 7
/// with sequence number 5; `acked`: its ack has been read.
fn request(e: &mut Engine, t: Instant, acked: bool) {
    let who = Task::named(812, 7, "ip");
    e.add_request(&who, 7, Op::Add, Object::Route(throw(52)), 5, t);
    if acked {
        e.ack(&who, 0, 5, t);
    }
}

#[test]
fn an_acknowledged_request_waits_while_its_namespace_has_notifications_unread() {
    let mut e = engine();
    let t = Instant::now();
    request(&mut e, t, true);
    // Long past the ack's wait, but namespace 7's socket still holds
    // notifications (read up to the ack only).
    let late = t + ACKED_WAIT * 4;
    e.notifications_read(&[(7, None)]);
    let _ = e.tick(late);
    assert!(
        e.take_outcomes().is_empty(),
        "reported before its notification"
    );
    // The notification is read: one change, with its process.
    e.notification(7, added(5), late);
    let _ = e.tick(late);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].who.map(|w| w.pid), Some(812));
    assert_eq!(out[0].result.as_deref(), Some("ok"));
    assert_eq!(out[0].note, None);
    assert_eq!(e.backlog(), 0);
}

#[test]
fn a_request_expires_once_its_namespace_was_read_past_its_deadline() {
    let mut e = engine();
    let t = Instant::now();
    request(&mut e, t, true);
    let deadline = t + ACKED_WAIT;
    // Read to its end before the deadline only: it waits.
    e.notifications_read(&[(7, Some(deadline - Duration::from_millis(1)))]);
    e.notifications_read(&[(7, None)]);
    let _ = e.tick(deadline + Duration::from_millis(5));
    assert!(e.take_outcomes().is_empty());
    // Read to its end after it, and no notification came: the request is
    // reported from its ack alone.
    let later = deadline + Duration::from_millis(10);
    e.notifications_read(&[(7, Some(later))]);
    let _ = e.tick(later);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].result.as_deref(), Some("ok"));
    assert_eq!(e.backlog(), 0);
}

#[test]
fn a_namespace_no_longer_watched_holds_no_wait() {
    let mut e = engine();
    let t = Instant::now();
    request(&mut e, t, false);
    e.notifications_read(&[(7, None)]);
    let late = t + REQUEST_WAIT;
    let _ = e.tick(late);
    assert!(e.take_outcomes().is_empty());
    // Its socket is gone (let go, or the namespace ended).
    e.notifications_read(&[]);
    let _ = e.tick(late);
    assert_eq!(e.take_outcomes().len(), 1);
}

#[test]
fn the_end_of_a_session_reports_what_still_waits() {
    let mut e = engine();
    let t = Instant::now();
    request(&mut e, t, false);
    e.notifications_read(&[(7, None)]);
    e.drain(t + Duration::from_millis(1));
    assert_eq!(e.take_outcomes().len(), 1);
}
