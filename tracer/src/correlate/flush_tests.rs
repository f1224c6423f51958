//! Removals found by the re-read after a flush the kernel hooks saw: what
//! explains them when the flush record and the request that caused it are
//! read in either order.
use std::time::{Duration, Instant};

use super::*;
use crate::collect::{kernel_event::KernelFlush, task::Task};
use crate::netlink::decode::{NlItem, NlObj};
use causes::RecentCause;
use pairing_tests::throw;

const NS: u32 = 7;

fn default_dev_v0() -> Route {
    Route {
        rtype: Some("unicast".into()),
        dst: Some("0.0.0.0/0".into()),
        ifindex: Some(3),
        ..throw(52)
    }
}

/// An engine on a hook rung whose mirror holds `default dev v0 table 52`.
fn engine_with_route(t: Instant) -> Engine {
    let mut e = Engine::new(RequestScope::default());
    let item = NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Route {
            op: Op::Add,
            route: default_dev_v0(),
        },
    };
    e.notification(NS, item, t);
    let _ = e.tick(t + Duration::from_secs(1));
    e.take_outcomes();
    e
}

fn flush(e: &mut Engine, task: Task, t: Instant) {
    e.kernel_event(
        KernelEvent::Flush(KernelFlush {
            task,
            table: 52,
            removed: 1,
            flush_all: false,
        }),
        t,
    );
}

fn link_down(who: Task, at: Instant) -> RecentCause {
    RecentCause {
        cause: Cause::LinkDown,
        who,
        source: Source::Tracepoint,
        at,
        ifindex: Some(3),
    }
}

/// v0's notification: up or down.
fn link(up: bool) -> NlItem {
    NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Link(crate::netlink::decode::LinkChange {
            deleted: false,
            ifindex: 3,
            name: Some("v0".into()),
            up: Some(up),
        }),
    }
}

/// Run the re-reads due by `now` against a kernel that has no routes left.
fn reread_empty(e: &mut Engine, now: Instant) -> Vec<Outcome> {
    for (ns, causes) in e.tick(now) {
        e.resync(ns, causes, now, |_| Ok(())).unwrap();
    }
    e.take_outcomes()
}

/// `ip link set v0 down` on the fentry rung, its flush record read before
/// its request (seen in QEMU on 5.10 and 6.12): the removal is credited to
/// the link going down, not to an unknown cause of the same process.
#[test]
fn a_flush_record_read_before_its_link_request_is_still_link_down() {
    let t = Instant::now() + Duration::from_secs(2);
    let mut e = engine_with_route(t - Duration::from_secs(2));
    let ip = Task::named(4321, NS, "ip");
    flush(&mut e, ip, t);
    e.causes
        .note(NS, link_down(ip, t + Duration::from_millis(2)));
    let out = reread_empty(&mut e, t + Duration::from_millis(200));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::LinkDown));
    assert_eq!(out[0].who.unwrap().pid, 4321);
    assert_eq!(out[0].note, Some(Note::Flushed));
}

/// Another process's link-down read after a flush it did not make does not
/// explain that flush: the flush's own process stays, with an unknown
/// cause.
#[test]
fn another_process_link_down_does_not_take_an_unexplained_flush() {
    let t = Instant::now() + Duration::from_secs(2);
    let mut e = engine_with_route(t - Duration::from_secs(2));
    flush(&mut e, Task::named(4321, NS, "ip"), t);
    let other = Task::named(999, NS, "networkctl");
    e.causes
        .note(NS, link_down(other, t + Duration::from_millis(2)));
    // The device is down by now: the removal is not awaited as a
    // notification still to be read.
    let out = reread_empty(&mut e, t + Duration::from_millis(200));
    let del: Vec<_> = out.iter().filter(|o| o.op == Op::Del).collect();
    assert_eq!(del.len(), 1, "{out:?}");
    assert_eq!(del[0].who.unwrap().pid, 4321);
    assert_eq!(del[0].cause, Some(Cause::Unknown));
}

/// `ip addr del 192.168.1.1/24 dev v0` on the tracepoint path: the
/// address's notification plans the re-read, and a route through v0 that
/// it finds gone is credited to the address removal and its process; an
/// address removed from another device explains nothing on v0.
#[test]
fn an_address_removal_explains_the_routes_on_its_device_only() {
    let run = |ifindex: u32| {
        let t = Instant::now();
        let mut e = Engine::new(RequestScope::all());
        let item = |obj| NlItem {
            seq: 0,
            portid: 0,
            flags: 0,
            obj,
        };
        e.notification(
            NS,
            item(NlObj::Link(crate::netlink::decode::LinkChange {
                deleted: false,
                ifindex: 3,
                name: Some("v0".into()),
                up: Some(true),
            })),
            t,
        );
        let via = Route {
            dst: Some("10.9.0.0/16".into()),
            gateway: Some("192.168.1.2".into()),
            ..default_dev_v0()
        };
        e.notification(
            NS,
            item(NlObj::Route {
                op: Op::Add,
                route: via,
            }),
            t,
        );
        let _ = e.tick(t + Duration::from_secs(1));
        e.take_outcomes();
        let t = t + Duration::from_secs(2);
        e.causes.note(
            NS,
            RecentCause {
                cause: Cause::AddrDel,
                who: Task::named(555, NS, "ip"),
                source: Source::Tracepoint,
                at: t,
                ifindex: Some(ifindex),
            },
        );
        e.notification(
            NS,
            item(NlObj::Addr {
                op: Op::Del,
                ifindex,
                addr: Some("192.168.1.1".into()),
            }),
            t,
        );
        reread_empty(&mut e, t + Duration::from_millis(200))
    };
    let out = run(3);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].op, Op::Del);
    assert_eq!(out[0].cause, Some(Cause::AddrDel));
    assert_eq!(out[0].who.unwrap().pid, 555);
    assert_eq!(out[0].note, Some(Note::Flushed));
    // Another device's address: v0's route, its device up, is not taken
    // for that removal's (it waits for a notification or goes out as
    // unknown, never as addr_del).
    let out = run(4);
    assert!(
        out.iter().all(|o| o.cause != Some(Cause::AddrDel)),
        "{out:?}"
    );
}

/// The link down's flush record with no request of its process read at
/// all (a copy lost, or one the tracer could not decode; seen in QEMU on
/// the fentry rung): the notifications show v0 down, so the flush in that
/// process's syscall took v0's routes by taking v0 down.
#[test]
fn a_flush_whose_request_was_never_read_takes_its_cause_from_the_link() {
    let t = Instant::now() + Duration::from_secs(2);
    let mut e = engine_with_route(t - Duration::from_secs(2));
    e.notification(NS, link(true), t - Duration::from_secs(1));
    let ip = Task::named(4321, NS, "ip");
    flush(&mut e, ip, t);
    e.notification(NS, link(false), t + Duration::from_millis(1));
    let out = reread_empty(&mut e, t + Duration::from_millis(200));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].cause, Some(Cause::LinkDown));
    assert_eq!(out[0].who.unwrap().pid, 4321);
    assert_eq!(out[0].note, Some(Note::Flushed));
}

/// `ip link set v0 down` on the fentry rung under load (QEMU, 6.1): the
/// flush record is read, and the re-read runs, before the link's
/// notification and the request are read; the removal waits, and what is
/// read during its wait says why. Nothing read: it stays unknown, with
/// its process.
#[test]
fn a_removal_waiting_unexplained_takes_the_cause_read_during_its_wait() {
    let run = |late: &dyn Fn(&mut Engine, Task, Instant)| {
        let t = Instant::now() + Duration::from_secs(2);
        let mut e = engine_with_route(t - Duration::from_secs(2));
        e.notification(NS, link(true), t - Duration::from_secs(1));
        let ip = Task::named(4321, NS, "ip");
        flush(&mut e, ip, t);
        let out = reread_empty(&mut e, t + Duration::from_millis(70));
        assert!(
            out.is_empty(),
            "waits for what is still to be read: {out:?}"
        );
        late(&mut e, ip, t + Duration::from_millis(400));
        // Past the wait (RECOVERY_WAIT after the re-read).
        let mut out = reread_empty(&mut e, t + Duration::from_secs(4));
        out.extend(e.take_outcomes());
        out
    };
    // The link's notification read late.
    let out = run(&|e, _, at| e.notification(NS, link(false), at));
    let del: Vec<_> = out.iter().filter(|o| o.op == Op::Del).collect();
    assert_eq!(del.len(), 1, "{out:?}");
    assert_eq!(del[0].cause, Some(Cause::LinkDown));
    assert_eq!(del[0].who.unwrap().pid, 4321);
    assert_eq!(del[0].note, Some(Note::Flushed));
    // The request read late (the device still up in the mirror).
    let out = run(&|e, ip, at| e.causes.note(NS, link_down(ip, at)));
    let del: Vec<_> = out.iter().filter(|o| o.op == Op::Del).collect();
    assert_eq!(del.len(), 1, "{out:?}");
    assert_eq!(del[0].cause, Some(Cause::LinkDown));
    assert_eq!(del[0].note, Some(Note::Flushed));
    // Another process's action read late does not explain it.
    let out = run(&|e, _, at| {
        e.causes
            .note(NS, link_down(Task::named(999, NS, "networkctl"), at))
    });
    let del: Vec<_> = out.iter().filter(|o| o.op == Op::Del).collect();
    assert_eq!(del.len(), 1, "{out:?}");
    assert_eq!(del[0].cause, Some(Cause::Unknown));
    assert_eq!(del[0].who.unwrap().pid, 4321);
    assert_eq!(del[0].note, Some(Note::FlushedUnexplained));
}
