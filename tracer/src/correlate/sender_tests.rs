//! A notification goes with its own sender's request: the netlink port id
//! it carries is the requester's pid whenever the requester's socket was
//! bound the usual way, and iproute2's sequence numbers (from `time(NULL)`)
//! are shared by every `ip` run of the same second.
use std::time::{Duration, Instant};

use super::*;
use crate::collect::task::Task;
use crate::netlink::decode::{NlItem, NlObj};
use pairing_tests::throw;

fn ip(pid: u32) -> Task {
    Task::named(pid, 7, "ip")
}

fn del_request(e: &mut Engine, pid: u32, seq: u32, table: u32, t: Instant) {
    let r = Route {
        rtype: Some("unspec".into()),
        protocol: Some("unspec".into()),
        ..throw(table)
    };
    e.add_request(&ip(pid), 7, Op::Del, Object::Route(r), seq, t);
}

fn deleted(seq: u32, portid: u32, table: u32) -> NlItem {
    NlItem {
        seq,
        portid,
        flags: 0,
        obj: NlObj::Route {
            op: Op::Del,
            route: throw(table),
        },
    }
}

#[test]
fn a_notification_goes_to_its_senders_request_before_an_older_one_with_the_same_number() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    del_request(&mut e, 100, 5, 52, t);
    del_request(&mut e, 200, 5, 52, t);
    e.notification(7, deleted(5, 200, 52), t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].who.map(|w| w.pid), Some(200), "the sender's own");
    // The other one's failed: the route was gone already.
    e.ack(&ip(100), -libc::ESRCH, 5, t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].who.map(|w| w.pid), Some(100));
    assert_eq!(out[0].result.as_deref(), Some("ESRCH"));
    assert_eq!(e.backlog(), 0);
}

#[test]
fn a_known_senders_lost_request_is_not_credited_to_another_process() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    // Process 100 has a request waiting (its next one), so its port id is
    // its pid; its request with number 5 was lost.
    del_request(&mut e, 100, 6, 53, t);
    del_request(&mut e, 200, 5, 52, t);
    e.notification(7, deleted(5, 100, 52), t);
    let _ = e.tick(t + Duration::from_millis(1));
    let out = e.take_outcomes();
    let mine: Vec<_> = out.iter().filter(|o| o.nl_seq == Some(5)).collect();
    assert_eq!(mine.len(), 1, "{out:?}");
    assert_eq!(mine[0].who, None, "not process 200's request");
    assert_eq!(
        mine[0].note,
        Some(Note::UnseenRequest {
            seq: 5,
            portid: 100
        })
    );
}

#[test]
fn a_port_id_that_is_not_a_pid_still_finds_the_request() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    del_request(&mut e, 300, 7, 52, t);
    // A second socket of the process: the kernel picked a negative port id.
    e.notification(7, deleted(7, 0xffff_efff, 52), t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].who.map(|w| w.pid), Some(300));
}

#[test]
fn an_early_notification_waits_for_its_senders_request() {
    let mut e = Engine::new(RequestScope::all());
    let t = Instant::now();
    // Both notifications came before their requests were read.
    e.notification(7, deleted(5, 100, 52), t);
    e.notification(7, deleted(5, 200, 53), t);
    del_request(&mut e, 200, 5, 53, t);
    del_request(&mut e, 100, 5, 52, t);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 2, "{out:?}");
    for o in &out {
        let Object::Route(r) = &o.object else {
            panic!("{o:?}")
        };
        let want = if r.table == Some(52) { 100 } else { 200 };
        assert_eq!(o.who.map(|w| w.pid), Some(want), "{o:?}");
    }
}
