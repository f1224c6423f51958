//! Which change is a loop's suspect: the incident's removal (its rules
//! flushed and restored around it), an added route, a replaced one, an
//! added rule, a removed rule, and changes undone or in another namespace.
use std::sync::Arc;

use super::{
    cause::Selector,
    suspect::{Changes, Decision, advice},
};
use crate::event::{Body, Change, Event, Family, Kind, Netns, Process, Route, Rule, Source};

const NS: u32 = 4026532000;

fn route(table: u32, rtype: &str, dst: &str, gw: Option<&str>, dev: Option<&str>) -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(table),
        rtype: Some(rtype.to_string().into()),
        dst: Some(dst.into()),
        gateway: gw.map(Into::into),
        dev: dev.map(Into::into),
        ..Route::default()
    }
}

fn rule(prio: u32, table: u32, dst: Option<&str>, fwmark: Option<u32>) -> Rule {
    Rule {
        family: Some(Family::Inet),
        priority: Some(prio),
        table: Some(table),
        action: Some("table".into()),
        dst: dst.map(Into::into),
        fwmark,
        fwmask: fwmark.map(|_| 0xff0000),
        ..Rule::default()
    }
}

/// A change by `comm` (pid `pid`) at second `sec`.
fn ev(sec: u32, kind: Kind, comm: &str, pid: u32, r: Option<Route>, rl: Option<Rule>) -> Event {
    Event {
        ts: format!("2026-12-05T05:00:{sec:02}.000000Z"),
        kind,
        source: Source::Tracepoint,
        body: Body::Change(Box::new(Change {
            process: Some(Arc::new(Process {
                pid,
                tid: pid,
                comm: comm.into(),
                ppid: None,
                parent_comm: None,
                exe: None,
                uid: 0,
                cgroup: None,
                unit: None,
                guard: false,
            })),
            netns: Netns {
                inode: Some(NS),
                name: None,
            },
            rule: rl,
            route: r,
            nexthop: None,
            result: Some("ok".into()),
            cause: None,
            old: None,
            old_nexthop: None,
            cause_nhid: None,
            nl_seq: None,
            note: None,
        })),
    }
}

fn packet(dst: &str) -> Selector<'static> {
    Selector {
        family: Family::Inet,
        src: "192.0.3.2".parse().unwrap(),
        dst: dst.parse().unwrap(),
        iif: "d5",
        mark: 0,
        proto: 17,
    }
}

fn suspect_of<'a>(
    c: &'a Changes,
    table: u32,
    chosen: &Route,
    prio: Option<u32>,
    p: &Selector,
) -> Option<&'a Event> {
    c.suspect(&Decision {
        netns: NS,
        table,
        chosen: Some(chosen),
        rule_priority: prio,
        packet: p,
    })
}

fn comm(e: Option<&Event>) -> Option<(&str, Kind)> {
    e.map(|e| {
        let c = e.change().unwrap();
        (c.process.as_deref().unwrap().comm.as_str(), e.kind)
    })
}

#[test]
fn incident_removal_beats_the_restored_rules() {
    let ts_rules = [
        rule(5210, 254, None, Some(0x80000)),
        rule(5270, 52, None, None),
    ];
    let mut c = Changes::default();
    for r in &ts_rules {
        c.note(
            NS,
            &ev(
                1,
                Kind::RuleDel,
                "systemd-network",
                10,
                None,
                Some(r.clone()),
            ),
        );
    }
    let throw = route(52, "throw", "192.168.1.0/24", None, None);
    c.note(
        NS,
        &ev(1, Kind::RouteDel, "systemd-network", 10, Some(throw), None),
    );
    for r in &ts_rules {
        c.note(
            NS,
            &ev(2, Kind::RuleAdd, "tailscaled", 20, None, Some(r.clone())),
        );
    }
    let chosen = route(52, "unicast", "0.0.0.0/0", None, Some("tailscale0"));
    let p = Selector {
        src: "100.119.140.15".parse().unwrap(),
        dst: "192.168.1.90".parse().unwrap(),
        iif: "tailscale0",
        proto: 1,
        ..packet("192.168.1.90")
    };
    let s = suspect_of(&c, 52, &chosen, Some(5270), &p);
    assert_eq!(comm(s), Some(("systemd-network", Kind::RouteDel)));
    let a = advice(
        p.dst,
        "tailscale0",
        Some(52),
        Some("default dev tailscale0"),
        s,
    );
    assert_eq!(
        a,
        "packets to 192.168.1.90 arriving on tailscale0 match `default dev tailscale0` in table 52 \
         and are sent back out of tailscale0; a route covering 192.168.1.90 in table 52 is missing: \
         `throw 192.168.1.0/24` was removed from table 52 at 2026-12-05T05:00:01.000000Z by \
         systemd-network (pid 10) and not restored"
    );
    // Put back: nothing explains the loop any more.
    let throw = route(52, "throw", "192.168.1.0/24", None, None);
    c.note(
        NS,
        &ev(3, Kind::RouteAdd, "tailscaled", 20, Some(throw), None),
    );
    assert_eq!(comm(suspect_of(&c, 52, &chosen, Some(5270), &p)), None);
}

#[test]
fn added_route_is_the_suspect() {
    let mut c = Changes::default();
    let old = route(
        254,
        "unicast",
        "10.77.0.0/16",
        Some("192.0.3.3"),
        Some("d5"),
    );
    let new = route(
        254,
        "unicast",
        "10.77.0.0/16",
        Some("192.0.3.2"),
        Some("d5"),
    );
    c.note(NS, &ev(1, Kind::RouteDel, "ip", 30, Some(old), None));
    c.note(
        NS,
        &ev(1, Kind::RouteAdd, "netplan", 31, Some(new.clone()), None),
    );
    // Later, unrelated: another table, another prefix, another namespace.
    let other = route(
        254,
        "unicast",
        "10.78.0.0/16",
        Some("192.0.3.2"),
        Some("d5"),
    );
    c.note(NS, &ev(2, Kind::RouteAdd, "ip", 32, Some(other), None));
    c.note(
        NS + 1,
        &ev(2, Kind::RouteAdd, "ip", 33, Some(new.clone()), None),
    );
    let p = packet("10.77.0.1");
    let s = suspect_of(&c, 254, &new, None, &p);
    assert_eq!(comm(s), Some(("netplan", Kind::RouteAdd)));
    let a = advice(
        p.dst,
        "d5",
        Some(254),
        Some("10.77.0.0/16 via 192.0.3.2 dev d5"),
        s,
    );
    assert!(
        a.ends_with(
            "are sent back out of d5: `10.77.0.0/16 via 192.0.3.2 dev d5` was added to table 254 \
             at 2026-12-05T05:00:01.000000Z by netplan (pid 31)"
        ),
        "{a}"
    );
}

#[test]
fn replaced_route_is_the_suspect_and_a_restored_one_is_not() {
    let mut c = Changes::default();
    let looping = route(
        254,
        "unicast",
        "10.77.0.0/16",
        Some("192.0.3.2"),
        Some("d5"),
    );
    c.note(
        NS,
        &ev(
            1,
            Kind::RouteReplace,
            "bird",
            40,
            Some(looping.clone()),
            None,
        ),
    );
    let p = packet("10.77.0.1");
    let s = suspect_of(&c, 254, &looping, None, &p);
    assert_eq!(comm(s), Some(("bird", Kind::RouteReplace)));
    // Removed and put back as it was by someone else: the replace is still
    // the change that made it the chosen route.
    c.note(
        NS,
        &ev(2, Kind::RouteDel, "ip", 41, Some(looping.clone()), None),
    );
    c.note(
        NS,
        &ev(3, Kind::RouteAdd, "ip", 41, Some(looping.clone()), None),
    );
    let s = suspect_of(&c, 254, &looping, None, &p);
    assert_eq!(comm(s), Some(("bird", Kind::RouteReplace)));
}

#[test]
fn added_rule_is_the_suspect() {
    let mut c = Changes::default();
    let looping = route(77, "unicast", "10.77.0.0/16", Some("192.0.3.2"), Some("d5"));
    // A rule for other traffic, and the one that selects the packet.
    c.note(
        NS,
        &ev(
            1,
            Kind::RuleAdd,
            "ip",
            50,
            None,
            Some(rule(90, 77, Some("10.99.0.0/16"), None)),
        ),
    );
    let r = rule(100, 77, Some("10.77.0.0/16"), None);
    c.note(
        NS,
        &ev(2, Kind::RuleAdd, "wg-quick", 51, None, Some(r.clone())),
    );
    // A marked rule added later does not select it.
    c.note(
        NS,
        &ev(
            3,
            Kind::RuleAdd,
            "ip",
            52,
            None,
            Some(rule(50, 77, None, Some(0x80000))),
        ),
    );
    let p = packet("10.77.0.1");
    let s = suspect_of(&c, 77, &looping, Some(100), &p);
    assert_eq!(comm(s), Some(("wg-quick", Kind::RuleAdd)));
    let a = advice(
        p.dst,
        "d5",
        Some(77),
        Some("10.77.0.0/16 via 192.0.3.2 dev d5"),
        s,
    );
    assert!(
        a.ends_with(
            ": rule `inet pref 100 to 10.77.0.0/16 lookup 77` sending them to table 77 was added \
             at 2026-12-05T05:00:02.000000Z by wg-quick (pid 51)"
        ),
        "{a}"
    );
    // Removed again and re-added as it was: the first addition stays the
    // suspect (the re-addition only undoes the removal).
    c.note(NS, &ev(4, Kind::RuleDel, "ip", 53, None, Some(r.clone())));
    c.note(NS, &ev(5, Kind::RuleAdd, "ip", 53, None, Some(r)));
    let s = suspect_of(&c, 77, &looping, Some(100), &p);
    assert_eq!(comm(s), Some(("wg-quick", Kind::RuleAdd)));
}

#[test]
fn removed_rule_that_sent_it_elsewhere_is_the_suspect() {
    let mut c = Changes::default();
    let looping = route(254, "unicast", "0.0.0.0/0", Some("192.0.3.2"), Some("d5"));
    // Rule 100 sent 10.77/16 to table 100 (the LAN); its removal lets the
    // packet reach main's looping default (rule 32766).
    let r = rule(100, 100, Some("10.77.0.0/16"), None);
    c.note(
        NS,
        &ev(1, Kind::RuleDel, "networkctl", 60, None, Some(r.clone())),
    );
    let p = packet("10.77.0.1");
    let s = suspect_of(&c, 254, &looping, Some(32766), &p);
    assert_eq!(comm(s), Some(("networkctl", Kind::RuleDel)));
    // Restored: not the suspect.
    c.note(NS, &ev(2, Kind::RuleAdd, "ip", 61, None, Some(r)));
    assert_eq!(comm(suspect_of(&c, 254, &looping, Some(32766), &p)), None);
}

#[test]
fn failed_changes_and_other_kinds_are_not_kept() {
    let mut c = Changes::default();
    let looping = route(
        254,
        "unicast",
        "10.77.0.0/16",
        Some("192.0.3.2"),
        Some("d5"),
    );
    let mut failed = ev(1, Kind::RouteAdd, "ip", 70, Some(looping.clone()), None);
    if let Body::Change(ch) = &mut failed.body {
        ch.result = Some("EEXIST".into());
    }
    c.note(NS, &failed);
    let p = packet("10.77.0.1");
    assert_eq!(comm(suspect_of(&c, 254, &looping, None, &p)), None);
    let a = advice(
        p.dst,
        "d5",
        Some(254),
        Some("10.77.0.0/16 via 192.0.3.2 dev d5"),
        None,
    );
    assert!(
        a.ends_with("; a route covering 10.77.0.1 in table 254 is missing (no change seen in this session explains it)"),
        "{a}"
    );
}
