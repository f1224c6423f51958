//! Keeps docs/events.md in step with the JSON the tracer emits: sample
//! events covering every kind are serialized and their keys and value types
//! compared, both ways, with the document's field tables. Its sample
//! builders serve other tests too (`metrics::present_tests`).
use std::collections::BTreeSet;

use serde_json::Value;

use crate::{
    event::{
        Body, Cause, Change, Event, Family, GroupMember, GuardAction, GuardReload, GuardRepair,
        GuardReport, JournalHealth, Kind, LoopLookup, LoopReport, Lost, NamespaceSeen, Netns,
        NextHop, Nexthop, PacketBrief, Process, Ready, Resilient, Route, Rule, SnapshotEnd, Source,
        StateEntry, TableTry, WatchedIface,
    },
    test_schema::{Checker, DOC, DOC_PATH, Schema, dedup, fail_on, parse_doc},
};

pub(crate) fn process() -> Process {
    Process {
        pid: 4242,
        tid: 4243,
        comm: "ip".into(),
        ppid: Some(4200),
        parent_comm: Some("bash".into()),
        exe: Some("/usr/sbin/ip".into()),
        uid: 0,
        cgroup: Some("/system.slice/foo.service".into()),
        unit: Some("foo.service".into()),
        guard: false,
    }
}

pub(crate) fn netns() -> Netns {
    Netns {
        inode: Some(4026532177),
        name: Some("t1".into()),
    }
}

pub(crate) fn route() -> Route {
    Route {
        family: Some(Family::Inet),
        table: Some(254),
        table_name: Some("main".into()),
        rtype: Some("unicast".into()),
        dst: Some("10.20.0.0/16".into()),
        gateway: Some("192.168.7.1".into()),
        dev: Some("veth0".into()),
        ifindex: Some(4),
        metric: Some(100),
        protocol: Some("boot".into()),
        scope: Some("global".into()),
        nexthops: Vec::new(),
        nhid: None,
    }
}

/// A multipath route with a nexthop id, so `nexthops` and `nhid` appear.
fn multipath() -> Route {
    Route {
        gateway: None,
        dev: None,
        ifindex: None,
        nhid: Some(10),
        nexthops: vec![
            NextHop {
                gateway: Some("192.168.7.1".into()),
                dev: Some("veth0".into()),
                ifindex: Some(4),
                weight: 1,
                flags: vec!["onlink".into()],
            },
            NextHop {
                gateway: Some("192.168.8.1".into()),
                dev: Some("veth1".into()),
                ifindex: Some(5),
                weight: 2,
                flags: vec![],
            },
        ],
        ..route()
    }
}

fn rule() -> Rule {
    Rule {
        family: Some(Family::Inet6),
        priority: Some(100),
        table: Some(100),
        table_name: Some("vpn".into()),
        action: Some("table".into()),
        goto: Some(200),
        src: Some("2001:db8::/32".into()),
        dst: Some("2001:db8:1::/48".into()),
        fwmark: Some(51820),
        fwmask: Some(0xffff),
        iif: Some("eth0".into()),
        oif: Some("wg0".into()),
        uid_range: Some("1000-1999".into()),
        ipproto: Some(6),
        sport: Some("1024-65535".into()),
        dport: Some("443".into()),
        tos: Some(16),
        suppress_prefixlen: Some(0),
        invert: true,
        protocol: Some("static".into()),
    }
}

fn packet_brief(src: &str, ttl: u8) -> PacketBrief {
    PacketBrief {
        src: src.into(),
        dst: "192.168.1.90".into(),
        proto: "icmp".into(),
        ttl,
        id: Some(4660),
        len: 84,
        icmp_id: Some(7),
        icmp_seq: Some(1),
        sport: Some(4000),
        dport: Some(53),
    }
}

pub(crate) fn loop_body(full: bool) -> Body {
    let suspect = event(
        Kind::RouteDel,
        Source::Tracepoint,
        change(None, Some(route())),
    );
    Body::Loop(Box::new(LoopReport {
        netns: netns(),
        iface: "tailscale0".into(),
        family: Family::Inet,
        original: packet_brief("100.119.140.15", 64),
        looped: packet_brief("100.98.98.126", 63),
        snat: true,
        packets: 3,
        new_packets: 1,
        lowest_ttl: 63,
        ttl_exceeded: 0,
        first_seen: "2026-11-24T19:10:39.258986Z".into(),
        last_seen: "2026-11-24T19:10:41.258986Z".into(),
        lookup: full.then(|| LoopLookup {
            table: Some(52),
            table_name: Some("tailscale".into()),
            rule_priority: Some(5270),
            route: Some("default dev tailscale0".into()),
            result_dev: Some("tailscale0".into()),
            tables_tried: vec![TableTry {
                table: 52,
                err: Some("EAGAIN".into()),
            }],
        }),
        suspect: full.then(|| Box::new(suspect)),
        advice: "a route covering 192.168.1.90 in table 52 is missing".into(),
    }))
}

pub(crate) fn change(rule: Option<Rule>, route: Option<Route>) -> Body {
    Body::Change(Box::new(Change {
        process: Some(std::sync::Arc::new(process())),
        netns: netns(),
        rule,
        route,
        result: Some("ok".into()),
        cause: Some(Cause::LinkDown),
        old: None,
        nexthop: None,
        old_nexthop: None,
        cause_nhid: None,
        nl_seq: Some(1795547440),
        note: Some("changed by the kernel after link_down by this process".into()),
    }))
}

/// A nexthop object with every field set, a group of two (resilient) and
/// what a deletion request names (its id).
fn nexthops() -> [Nexthop; 3] {
    let single = Nexthop {
        id: 10,
        family: Some(Family::Inet),
        gateway: Some("10.9.0.2".into()),
        dev: Some("v0".into()),
        ifindex: Some(2),
        blackhole: false,
        fdb: false,
        protocol: Some("zebra".into()),
        flags: vec!["onlink".into()],
        ..Nexthop::default()
    };
    let group = Nexthop {
        id: 20,
        group: vec![
            GroupMember { id: 10, weight: 1 },
            GroupMember { id: 11, weight: 3 },
        ],
        group_type: Some("resilient".into()),
        resilient: Some(Resilient {
            buckets: Some(8),
            idle_timer: Some(60),
            unbalanced_timer: Some(0),
            unbalanced_time: Some(0),
        }),
        ..Nexthop::default()
    };
    [
        single,
        group,
        Nexthop {
            id: 10,
            ..Nexthop::default()
        },
    ]
}

fn nexthop_samples() -> Vec<Event> {
    let [single, group, named] = nexthops();
    let with = |nexthop: Nexthop, old: Option<Nexthop>| {
        let Body::Change(mut c) = change(None, None) else {
            unreachable!()
        };
        c.cause = None;
        c.nexthop = Some(nexthop);
        c.old_nexthop = old;
        Body::Change(c)
    };
    let gone = {
        let Body::Change(mut c) = change(
            None,
            Some(Route {
                nhid: Some(10),
                ..route()
            }),
        ) else {
            unreachable!()
        };
        c.cause = Some(Cause::NexthopDel);
        c.cause_nhid = Some(10);
        Body::Change(c)
    };
    vec![
        event(
            Kind::NexthopAdd,
            Source::Tracepoint,
            with(single.clone(), None),
        ),
        event(
            Kind::NexthopReplace,
            Source::Netlink,
            with(group.clone(), Some(group)),
        ),
        event(Kind::NexthopDel, Source::Fentry, with(named, None)),
        event(Kind::NexthopDel, Source::Kprobe, with(single, None)),
        event(Kind::RouteDel, Source::Tracepoint, gone),
    ]
}

pub(crate) fn event(kind: Kind, source: Source, body: Body) -> Event {
    Event {
        ts: "2026-11-24T19:10:39.258986Z".into(),
        kind,
        source,
        body,
    }
}

/// Every kind, with every Option filled (so every key appears), plus the
/// same changes with every Option empty (so nulls and absent keys appear).
fn samples() -> Vec<Event> {
    let empty_change = |rule, route| {
        Body::Change(Box::new(Change {
            process: None,
            netns: Netns::default(),
            rule,
            route,
            result: None,
            cause: None,
            old: None,
            nexthop: None,
            old_nexthop: None,
            cause_nhid: None,
            nl_seq: None,
            note: None,
        }))
    };
    vec![
        event(
            Kind::RouteDel,
            Source::Tracepoint,
            change(None, Some(route())),
        ),
        event(Kind::RouteAdd, Source::Fentry, change(None, Some(route()))),
        event(
            Kind::RouteAdd,
            Source::Fentry,
            change(None, Some(multipath())),
        ),
        event(Kind::RouteReplace, Source::Tracepoint, {
            let Body::Change(mut c) = change(None, Some(route())) else {
                unreachable!()
            };
            c.old = Some(Route {
                rtype: Some("blackhole".into()),
                gateway: None,
                ..route()
            });
            Body::Change(c)
        }),
        event(Kind::RuleAdd, Source::Kprobe, change(Some(rule()), None)),
        event(Kind::RuleDel, Source::Netlink, change(Some(rule()), None)),
        event(
            Kind::RouteAdd,
            Source::Netlink,
            empty_change(None, Some(Route::default())),
        ),
        event(
            Kind::RuleDel,
            Source::Netlink,
            empty_change(Some(Rule::default()), None),
        ),
        event(
            Kind::Lost,
            Source::Tracepoint,
            Body::Lost(Lost {
                count: 37,
                location: "ring_buffer".into(),
            }),
        ),
        event(Kind::Loop, Source::Tracepoint, loop_body(true)),
        event(Kind::LoopSummary, Source::Tracepoint, loop_body(false)),
        event(Kind::LoopEnd, Source::Tracepoint, loop_body(true)),
        event(
            Kind::Snapshot,
            Source::Netlink,
            Body::State(Box::new(StateEntry {
                netns: netns(),
                rule: None,
                route: Some(route()),
            })),
        ),
        event(
            Kind::Snapshot,
            Source::Netlink,
            Body::State(Box::new(StateEntry {
                netns: netns(),
                rule: Some(rule()),
                route: None,
            })),
        ),
        event(
            Kind::SnapshotEnd,
            Source::Netlink,
            Body::SnapshotEnd(SnapshotEnd {
                netns: netns(),
                rules: 7,
                routes: 4,
            }),
        ),
        event(
            Kind::JournalError,
            Source::Tracer,
            Body::Journal(JournalHealth {
                path: "/var/lib/tracer/journal/tracer-20261124T191037.719378Z.jsonl".into(),
                error: Some("No space left on device (os error 28)".into()),
                dropped: 0,
            }),
        ),
        event(
            Kind::JournalResumed,
            Source::Tracer,
            Body::Journal(JournalHealth {
                path: "/var/lib/tracer/journal/tracer-20261124T191037.719378Z.jsonl".into(),
                error: None,
                dropped: 12,
            }),
        ),
        event(
            Kind::GuardViolation,
            Source::Tracer,
            Body::Guard(GuardReport {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                netns: netns(),
                since: "2026-11-24T19:10:39.258986Z".into(),
                grace_secs: 5.0,
                change: Some(Box::new(event(
                    Kind::RouteDel,
                    Source::Tracepoint,
                    change(None, Some(route())),
                ))),
            }),
        ),
        event(
            Kind::GuardViolation,
            Source::Tracer,
            Body::Guard(GuardReport {
                expectation: "rule 5270 table 52".into(),
                netns: netns(),
                since: "2026-11-24T19:10:39.258986Z".into(),
                grace_secs: 5.0,
                change: None,
            }),
        ),
        event(
            Kind::GuardAction,
            Source::Tracer,
            Body::GuardAction(GuardAction {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                command: "logger -t tracer".into(),
                exit_code: Some(0),
                error: Some("timed out after 10 s".into()),
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 12,
                suppressed: 0,
            }),
        ),
        event(
            Kind::GuardAction,
            Source::Tracer,
            Body::GuardAction(GuardAction {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                command: "false".into(),
                exit_code: None,
                error: None,
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 1,
                suppressed: 3,
            }),
        ),
        event(
            Kind::Ready,
            Source::Fentry,
            Body::Ready(Ready {
                hooks: [("route4_add".to_string(), Source::Fentry)].into(),
                functions: [("route4_add".to_string(), "fib_table_insert".to_string())].into(),
                kernel: "6.18.44".into(),
                version: "0.1.0".into(),
                pid: 28919,
                namespaces: vec![netns()],
                ifaces: vec![WatchedIface {
                    iface: "router:tailscale0".into(),
                    via: Some("tc"),
                    hook: Some("clsact"),
                    programs: Some("always"),
                }],
            }),
        ),
    ]
    .into_iter()
    .chain(repair_samples())
    .chain(namespace_samples())
    .collect()
}

/// The events of `guard --repair`, and a change made by the guard itself.
/// `netns_new` and `netns_gone`.
fn namespace_samples() -> Vec<Event> {
    [Kind::NetnsNew, Kind::NetnsGone]
        .into_iter()
        .map(|k| {
            event(
                k,
                Source::Tracer,
                Body::Namespace(NamespaceSeen { netns: netns() }),
            )
        })
        .collect()
}

pub(crate) fn repair_samples() -> Vec<Event> {
    let removal = event(
        Kind::RouteDel,
        Source::Tracepoint,
        change(None, Some(route())),
    );
    let repair = |kind, result: Option<&'static str>, waiting: Option<&str>| {
        event(
            kind,
            Source::Tracer,
            Body::GuardRepair(Box::new(GuardRepair {
                expectation: "throw 192.168.1.0/24 table 52".into(),
                netns: netns(),
                rule: None,
                route: Some(route()),
                result: result.map(Into::into),
                attempt: 1,
                limit: 3,
                window_secs: 600.0,
                dry_run: false,
                nl_seq: result.map(|_| 1732463570),
                ms_after_grace: result.map(|_| 1.5),
                waiting_for: waiting.map(Into::into),
                removal: Box::new(removal.clone()),
            })),
        )
    };
    let mut by_guard = event(
        Kind::RouteAdd,
        Source::Tracepoint,
        change(None, Some(route())),
    );
    if let Body::Change(c) = &mut by_guard.body {
        c.process = Some(std::sync::Arc::new(Process {
            guard: true,
            ..process()
        }));
    }
    vec![
        repair(Kind::GuardRepair, Some("ok"), None),
        repair(Kind::GuardRepairWaiting, None, Some("tailscale0")),
        repair(Kind::GuardRepairGaveUp, None, None),
        {
            let mut e = repair(Kind::GuardRepair, Some("EEXIST"), None);
            if let Body::GuardRepair(r) = &mut e.body {
                (r.rule, r.route) = (Some(rule()), None);
            }
            e
        },
        event(
            Kind::GuardReloaded,
            Source::Tracer,
            Body::GuardReload(GuardReload {
                added: vec!["throw 10.10.10.0/24 table 52".into()],
                removed: Vec::new(),
                expectations: 4,
                error: Some("cannot read --expect-file /etc/x".into()),
            }),
        ),
        by_guard,
    ]
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn check_samples(schema: &Schema) -> Vec<String> {
    let mut checker = Checker::new(schema);
    for e in samples().into_iter().chain(nexthop_samples()) {
        checker.origin = format!("sample {}", e.kind.as_str());
        // As the writers write it: with the host's identity.
        let host = crate::event::Host::new("router-1", Some("8c1f0e2a"));
        let line: Value =
            serde_json::from_str(&host.json(&e).expect("event serializes")).expect("JSON");
        let body_keys = keys(&serde_json::to_value(&e.body).expect("body serializes"));
        checker.event(&line, Some(body_keys));
    }
    let mut errors = dedup(checker.errors);
    for (object, fields) in schema {
        let seen = checker.seen.get(object).cloned().unwrap_or_default();
        for name in fields.keys().filter(|n| !seen.contains(*n)) {
            errors.push(format!(
                "{object}.{name} is documented in {DOC_PATH} but never emitted"
            ));
        }
    }
    errors
}

#[test]
fn documented_fields_match_emitted_json() {
    let schema = parse_doc(DOC);
    fail_on(check_samples(&schema));
}

#[test]
fn drift_is_reported() {
    // Drift the parsed tables (not the document text, so this keeps working
    // as the prose changes): an undocumented key, a documented field that is
    // never emitted and a wrong type are all caught, naming object and field.
    let mut schema = parse_doc(DOC);
    let route = schema.get_mut("route").unwrap();
    let metric = route.remove("metric").expect("route.metric is documented");
    route.insert("metrik".into(), metric);
    schema
        .get_mut("process")
        .unwrap()
        .get_mut("pid")
        .expect("process.pid is documented")
        .ty = "string".into();
    let errors = check_samples(&schema);
    let has = |prefix: &str| errors.iter().any(|e| e.starts_with(prefix));
    assert!(
        has("route.metric is emitted but not documented in docs/events.md"),
        "{errors:#?}"
    );
    assert!(
        has("route.metrik is documented in docs/events.md but never emitted"),
        "{errors:#?}"
    );
    assert!(
        has("process.pid is documented as string in docs/events.md but is emitted as number"),
        "{errors:#?}"
    );
}
