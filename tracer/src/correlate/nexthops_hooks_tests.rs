//! Nexthop deletions as the kprobe/fentry rungs see them: the handler's
//! own record comes after every notification and after the records of the
//! functions it called (fib_table_flush, fib6_del); flushes close together.
use std::time::{Duration, Instant};

use super::*;

/// Runs the re-reads due within 1.5 s of `t`, the kernel still holding the
/// IPv4 routes of `engine()` (through nexthop 10 and group 20); how many ran.
fn reread_keeping_v4(e: &mut Engine, t: Instant) -> usize {
    let v4 = |dst: [u8; 4], table: u32, nhid: u32| crate::netlink::route_msg::RouteMsg {
        family: 2,
        dst_len: 24,
        table,
        rtype: 1,
        protocol: 3,
        scope: 0,
        dst: Some([
            dst[0], dst[1], dst[2], dst[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]),
        gateway: None,
        oif: Some(2),
        metric: None,
        nhid: Some(nhid),
        multipath: false,
    };
    let mut resyncs = 0;
    for step in 1..=30 {
        let now = t + Duration::from_millis(50 * step);
        for (netns, causes) in e.tick(now) {
            resyncs += 1;
            e.resync(netns, causes, now, |each| {
                each(&v4([198, 51, 100, 0], 100, 10));
                each(&v4([198, 51, 101, 0], 254, 10));
                each(&v4([203, 0, 113, 0], 100, 20));
                Ok(())
            })
            .unwrap();
        }
    }
    resyncs
}

/// The kprobe/fentry order: the kernel sends every notification and runs
/// fib_table_flush and fib6_del (records in the handler's thread) before
/// rtm_del_nexthop returns and its record is written.
#[test]
fn on_kernel_hooks_the_deletion_record_comes_last_and_nothing_is_doubled() {
    use crate::collect::kernel_event::{KernelEvent, KernelFlush, KernelRoute, NlCopy};
    let (mut e, t) = engine();
    e.requests_for = RequestScope::default();
    let mut task = who(817);
    task.source = Source::Kprobe;
    // Notifications: the deletion, the group without 11.
    e.notification(
        NS,
        item(47, 817, 0, nh(Op::Del, single(11, "fd09::2", 2))),
        t,
    );
    e.notification(NS, item(47, 817, 0, nh(Op::Add, group(20, &[(10, 1)]))), t);
    // fib6_del's record of the IPv6 route (no request of its own), then
    // its notification; a flush record of table 100.
    let sparse = Route {
        nhid: None,
        protocol: None,
        scope: None,
        rtype: None,
        ..route("fd77::/64", 100, 11)
    };
    e.kernel_event(
        KernelEvent::Route(KernelRoute {
            task,
            op: Op::Del,
            route: sparse,
            nl_seq: 0,
            ret: 0,
            requested: false,
        }),
        t,
    );
    e.notification(
        NS,
        item(
            47,
            817,
            0,
            NlObj::Route {
                op: Op::Del,
                route: route("fd77::/64", 100, 11),
            },
        ),
        t,
    );
    e.kernel_event(
        KernelEvent::Flush(KernelFlush {
            task,
            table: 100,
            removed: 1,
            flush_all: false,
        }),
        t,
    );
    // rtm_del_nexthop's record: the request, copied at the handler.
    let named = Nexthop {
        id: 11,
        ..Nexthop::default()
    };
    let data = crate::netlink::nexthop_msg::encode(105, 5, 47, &named);
    e.kernel_event(
        KernelEvent::Rule(NlCopy {
            task,
            syscall: 0,
            truncated: false,
            fd: -1,
            ret: 0,
            data,
        }),
        t,
    );
    // The flush's re-read: the kernel still has the routes through 10
    // and 20; it finds nothing the deletion did not report.
    let resyncs = reread_keeping_v4(&mut e, t);
    assert_eq!(resyncs, 1, "the flush record's re-read");
    let s = summary(&e.take_outcomes());
    let kinds: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "nexthop Del",
            "nexthop Addreplace",
            "route Addreplace",
            "route Del"
        ],
        "{s:#?}"
    );
    for x in &s {
        assert_eq!(x.4, Some(817), "{s:#?}");
    }
    assert_eq!((s[3].2, s[3].3), (Some(Cause::NexthopDel), Some(11)));
}

/// Recorded on Debian 5.10 (fentry), the scenario's end: `ip nexthop del
/// id 12` (the last member of group 20, whose IPv4 route goes with a
/// flush), then 59 ms later `ip link set v0 down`, whose fib_table_flush
/// record comes before the IPv6 route removals of the same syscall. The
/// re-read planned by the first flush must wait for the second flush's
/// removals: run at its first due time, it found 2001:db8:1::/64 gone
/// before its removal was read, and the route was reported twice.
#[test]
fn a_flush_during_a_planned_re_read_puts_it_off_until_its_removals_are_read() {
    // The kprobe/fentry rungs: every change from a kernel hook.
    let mut e = Engine::new(RequestScope::default());
    let t = Instant::now();
    // A kernel hook's task, at `ms` after the deletion (boot clock).
    let hook = |pid, ms: u64| Task {
        source: Source::Fentry,
        ts_ns: 1_000_000_000 + ms * 1_000_000,
        ..who(pid)
    };
    e.mirror(NS).load_links(&[item(
        0,
        0,
        0,
        NlObj::Link(LinkChange {
            deleted: false,
            ifindex: 2,
            name: Some("v0".into()),
            up: Some(true),
        }),
    )]);
    let on_v0 = |dst: &str, metric| Route {
        nhid: None,
        ifindex: Some(2),
        protocol: Some("kernel".into()),
        metric,
        ..route(dst, 254, 0)
    };
    let lan4 = on_v0("192.168.1.0/24", None);
    let lan6 = on_v0("2001:db8:1::/64", Some(256));
    let setup = [
        nh(Op::Add, single(12, "192.168.1.4", 2)),
        nh(Op::Add, group(20, &[(12, 3)])),
        NlObj::Route {
            op: Op::Add,
            route: route("203.0.113.0/24", 254, 20),
        },
        NlObj::Route {
            op: Op::Add,
            route: lan4,
        },
        NlObj::Route {
            op: Op::Add,
            route: lan6.clone(),
        },
    ];
    for obj in setup {
        e.notification(NS, item(0, 0, 0, obj), t);
    }
    let _ = e.tick(t + Duration::from_secs(5));
    e.take_outcomes();
    let t = t + Duration::from_secs(5);
    // What the session does at each tick: the due re-reads, each finding
    // the kernel's tables as they are by then (every route above gone).
    let tick = |e: &mut Engine, now| {
        for (netns, causes) in e.tick(now) {
            e.resync(netns, causes, now, |_| Ok(())).unwrap();
        }
    };
    let flush = |pid, ms| {
        KernelEvent::Flush(crate::collect::kernel_event::KernelFlush {
            task: hook(pid, ms),
            table: 254,
            removed: 1,
            flush_all: false,
        })
    };

    // `ip nexthop del id 12`: its notification, group 20's, the flush of
    // 203.0.113.0/24 (through 20), then the handler's record.
    e.notification(
        NS,
        item(41, 228, 0, nh(Op::Del, single(12, "192.168.1.4", 2))),
        t,
    );
    e.notification(NS, item(41, 228, 0, nh(Op::Del, group(20, &[]))), t);
    e.kernel_event(flush(228, 0), t);
    let named = Nexthop {
        id: 12,
        ..Nexthop::default()
    };
    e.kernel_change(
        &hook(228, 0),
        Op::Del,
        Object::Nexthop(Box::new(named)),
        41,
        0,
        t,
    );
    tick(&mut e, t + Duration::from_millis(10));

    // `ip link set v0 down`, 59 ms later: its IPv4 flush record; the first
    // flush's re-read falls due; then the IPv6 removal, record and
    // notification.
    let down = t + Duration::from_millis(59);
    e.causes.note(
        NS,
        causes::RecentCause {
            cause: Cause::LinkDown,
            who: hook(229, 59),
            source: Source::Fentry,
            at: down,
            ifindex: Some(2),
        },
    );
    e.kernel_event(flush(229, 59), down);
    tick(&mut e, t + Duration::from_millis(61));
    let later = t + Duration::from_millis(62);
    e.kernel_event(
        KernelEvent::Route(crate::collect::kernel_event::KernelRoute {
            task: hook(229, 62),
            op: Op::Del,
            route: lan6.clone(),
            nl_seq: 0,
            ret: 0,
            requested: false,
        }),
        later,
    );
    let obj = NlObj::Route {
        op: Op::Del,
        route: lan6,
    };
    e.notification(NS, item(0, 0, 0, obj), later);
    tick(&mut e, t + Duration::from_millis(200));
    tick(&mut e, t + Duration::from_secs(2));

    let s = summary(&e.take_outcomes());
    let link_down = (Some(Cause::LinkDown), None, Some(229));
    for dst in ["192.168.1.0/24", "2001:db8:1::/64"] {
        let found: Vec<&Summary> = s.iter().filter(|x| x.1.starts_with(dst)).collect();
        assert_eq!(found.len(), 1, "{dst} removed once: {s:#?}");
        assert_eq!(found[0].0, "route Del");
        assert_eq!((found[0].2, found[0].3, found[0].4), link_down, "{s:#?}");
    }
    // In the order the kernel made them: the deletion and what went with
    // it, then the link's routes (the IPv4 one found by the re-read).
    let order: Vec<(&str, Option<u32>)> = s.iter().map(|x| (x.1.as_str(), x.4)).collect();
    assert_eq!(
        order,
        [
            ("id 12 members 0", Some(228)),
            ("id 20 members 1", Some(228)),
            ("203.0.113.0/24 via None dev None hops 1", Some(228)),
            ("192.168.1.0/24 via None dev Some(\"v0\") hops 0", Some(229)),
            (
                "2001:db8:1::/64 via None dev Some(\"v0\") hops 0",
                Some(229)
            ),
        ],
        "{s:#?}"
    );
}

/// Recorded on Debian 5.10 (fentry): the re-read planned by `ip nexthop
/// del id 10`'s flush ran after the next command had removed the IPv6
/// route of nexthop 11, before that deletion's notification was read. The
/// route must be reported once, from the deletion, with its cause.
#[test]
fn a_re_read_leaves_ipv6_removals_to_their_notifications() {
    use crate::collect::kernel_event::{KernelEvent, KernelFlush};
    let (mut e, t) = engine();
    e.requests_for = RequestScope::default();
    let mut first = who(527);
    first.source = Source::Fentry;
    e.kernel_event(
        KernelEvent::Flush(KernelFlush {
            task: first,
            table: 100,
            removed: 1,
            flush_all: false,
        }),
        t,
    );
    // The re-read: the IPv4 routes are there, fd77::/64 is not any more.
    reread_keeping_v4(&mut e, t);
    assert!(
        e.take_outcomes().is_empty(),
        "nothing vanished without a word"
    );
    // Then nexthop 11's deletion is read (a request on this rung's scope
    // would be the same): its route goes with it, once.
    e.requests_for = RequestScope::all();
    del_request(&mut e, 528, 11, 60, t);
    e.notification(
        NS,
        item(60, 528, 0, nh(Op::Del, single(11, "fd09::2", 2))),
        t,
    );
    e.notification(NS, item(60, 528, 0, nh(Op::Add, group(20, &[(10, 1)]))), t);
    e.notification(
        NS,
        item(
            60,
            528,
            0,
            NlObj::Route {
                op: Op::Del,
                route: route("fd77::/64", 100, 11),
            },
        ),
        t,
    );
    let _ = e.tick(t + Duration::from_secs(2));
    let s = summary(&e.take_outcomes());
    let gone: Vec<_> = s.iter().filter(|x| x.1.starts_with("fd77::/64")).collect();
    assert_eq!(gone.len(), 1, "{s:#?}");
    assert_eq!(
        (gone[0].2, gone[0].3, gone[0].4),
        (Some(Cause::NexthopDel), Some(11), Some(528))
    );
}
