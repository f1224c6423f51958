//! The guard: a removed expected route or rule is one violation naming the
//! removal, unless restored within the grace period; failed changes and
//! other objects do not count; what is missing at the start is reported at
//! once; expecting the current state takes the table's routes and rules.
use std::time::Duration;

use super::*;
use crate::{
    event::{Change, Family, Process, Route, Rule, StateEntry},
    netlink::names::TableNames,
};

fn ns() -> Netns {
    Netns {
        inode: Some(4026532177),
        name: Some("router".into()),
    }
}

fn throw() -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(52),
        rtype: Some("throw".into()),
        dst: Some("192.168.1.0/24".into()),
        ..Route::default()
    }
}

fn rule(prio: u32) -> Rule {
    Rule {
        family: Some(Family::Inet),
        priority: Some(prio),
        table: Some(52),
        action: Some("table".into()),
        ..Rule::default()
    }
}

fn state(rule: Option<Rule>, route: Option<Route>) -> Event {
    Event {
        ts: "2026-04-10T15:40:00.000000Z".into(),
        kind: Kind::Snapshot,
        source: Source::Netlink,
        body: Body::State(Box::new(StateEntry {
            netns: ns(),
            rule,
            route,
        })),
    }
}

fn change(kind: Kind, rule: Option<Rule>, route: Option<Route>, result: &str) -> Event {
    Event {
        ts: "2026-04-10T15:52:46.118310Z".into(),
        kind,
        source: Source::Tracepoint,
        body: Body::Change(Box::new(Change {
            process: Some(std::sync::Arc::new(Process {
                pid: 812,
                comm: "systemd-network".into(),
                ..Process::default()
            })),
            netns: ns(),
            rule,
            route,
            result: Some(result.to_string().into()),
            cause: None,
            old: None,
            nexthop: None,
            old_nexthop: None,
            cause_nhid: None,
            nl_seq: None,
            note: None,
        })),
    }
}

fn guard(texts: &[&str], grace: Duration) -> Guard {
    let names = TableNames::load();
    let list = texts
        .iter()
        .map(|t| (t.to_string(), Expectation::parse(t, &names).unwrap()))
        .collect();
    Guard::new(list, &[ns()], grace, None)
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn a_removed_route_is_one_violation_naming_the_removal() {
    let mut g = guard(&["throw 192.168.1.0/24 table 52"], Duration::ZERO);
    assert!(g.event(&state(None, Some(throw()))).is_empty());
    assert!(g.start().is_empty(), "present at start: no violation");
    let del = change(Kind::RouteDel, None, Some(throw()), "ok");
    assert!(g.event(&del).is_empty(), "reported by tick, not at once");
    let v = g.tick();
    assert_eq!(kinds(&v), ["guard_violation"]);
    let Body::Guard(r) = &v[0].body else {
        unreachable!()
    };
    assert_eq!(r.expectation, "throw 192.168.1.0/24 table 52");
    assert_eq!(r.since, "2026-04-10T15:52:46.118310Z");
    assert_eq!(r.netns, ns());
    assert_eq!(r.change.as_deref(), Some(&del));
    // Exactly one: later ticks and repeated removals add nothing.
    assert!(g.tick().is_empty());
    assert!(g.event(&del).is_empty());
    assert!(g.tick().is_empty());
    // Put back: restored, naming the addition.
    let add = change(Kind::RouteAdd, None, Some(throw()), "ok");
    let r = g.event(&add);
    assert_eq!(kinds(&r), ["guard_restored"]);
    assert_eq!(g.status().values().collect::<Vec<_>>(), [&true]);
}

#[test]
fn restored_within_the_grace_period_is_no_violation() {
    let mut g = guard(
        &["throw 192.168.1.0/24 table 52"],
        Duration::from_secs(3600),
    );
    g.event(&state(None, Some(throw())));
    g.start();
    g.event(&change(Kind::RouteDel, None, Some(throw()), "ok"));
    assert!(g.tick().is_empty());
    assert!(
        g.event(&change(Kind::RouteAdd, None, Some(throw()), "ok"))
            .is_empty(),
        "not reported, so no restore either"
    );
    assert!(g.tick().is_empty());
}

#[test]
fn failed_changes_and_other_objects_do_not_count() {
    let mut g = guard(
        &["throw 192.168.1.0/24 table 52", "rule 5270 table 52"],
        Duration::ZERO,
    );
    g.event(&state(None, Some(throw())));
    g.event(&state(Some(rule(5270)), None));
    g.start();
    // A delete the kernel refused, and removals of other things.
    g.event(&change(Kind::RouteDel, None, Some(throw()), "ESRCH"));
    g.event(&change(Kind::RuleDel, Some(rule(5250)), None, "ok"));
    let other = Route {
        dst: Some("10.10.10.0/24".into()),
        ..throw()
    };
    g.event(&change(Kind::RouteDel, None, Some(other), "ok"));
    assert!(g.tick().is_empty());
}

#[test]
fn missing_at_start_is_reported_at_once() {
    let mut g = guard(
        &["throw 192.168.1.0/24 table 52", "rule 5270 table 52"],
        Duration::from_secs(3600),
    );
    g.event(&state(Some(rule(5270)), None));
    let v = g.start();
    assert_eq!(kinds(&v), ["guard_violation"]);
    let Body::Guard(r) = &v[0].body else {
        unreachable!()
    };
    assert_eq!(r.expectation, "throw 192.168.1.0/24 table 52");
    assert!(r.change.is_none());
}

#[test]
fn a_route_seen_twice_is_still_one_route() {
    // The snapshot and a notification racing it both show the same route:
    // one removal must still break the expectation.
    let mut g = guard(&["throw 192.168.1.0/24 table 52"], Duration::ZERO);
    g.event(&state(None, Some(throw())));
    g.start();
    g.event(&change(Kind::RouteAdd, None, Some(throw()), "ok"));
    g.event(&change(Kind::RouteDel, None, Some(throw()), "ok"));
    assert_eq!(kinds(&g.tick()), ["guard_violation"]);
}

#[test]
fn expect_current_takes_the_tables_routes_and_rules() {
    let mut g = Guard::new(Vec::new(), &[ns()], Duration::ZERO, None);
    g.expect_current(vec![52], &[ns()]);
    g.event(&state(None, Some(throw())));
    g.event(&state(Some(rule(5270)), None));
    let main = Route {
        table: Some(254),
        ..throw()
    };
    g.event(&state(None, Some(main.clone())));
    assert!(g.start().is_empty());
    let expectations: Vec<String> = g.status().keys().map(|k| k.0.clone()).collect();
    assert_eq!(
        expectations,
        ["rule 5270 lookup 52", "throw 192.168.1.0/24 table 52"]
    );
    // Table 254 is not guarded.
    g.event(&change(Kind::RouteDel, None, Some(main), "ok"));
    assert!(g.tick().is_empty());
    g.event(&change(Kind::RuleDel, Some(rule(5270)), None, "ok"));
    assert_eq!(kinds(&g.tick()), ["guard_violation"]);
}
