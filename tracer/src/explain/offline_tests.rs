use super::*;

fn rule(prio: u32, action: &str, table: Option<u32>) -> Rule {
    Rule {
        family: Some(Family::Inet),
        priority: Some(prio),
        table,
        action: Some(action.into()),
        ..Rule::default()
    }
}

fn route(table: u32, rtype: &str, dst: &str, dev: Option<&str>, metric: Option<u32>) -> Route {
    Route {
        family: Some(if dst.contains(':') {
            Family::Inet6
        } else {
            Family::Inet
        }),
        table: Some(table),
        rtype: Some(rtype.to_string().into()),
        dst: Some(dst.into()),
        dev: dev.map(str::to_string),
        metric,
        ..Route::default()
    }
}

fn ask(dst: &str, iif: Option<&str>) -> Question {
    Question {
        dst: Some(dst.parse().unwrap()),
        src: Some(if dst.contains(':') {
            "fd7a::1".parse().unwrap()
        } else {
            "100.119.140.15".parse().unwrap()
        }),
        iif: iif.map(str::to_string),
        ..Question::default()
    }
}

/// The lab's router: rules 5210-5270 and table 52.
fn lab(with_throw: bool) -> (Vec<Rule>, Vec<Route>) {
    let marked = |prio: u32, action: &str, table: Option<u32>| Rule {
        fwmark: Some(0x80000),
        fwmask: Some(0xff0000),
        ..rule(prio, action, table)
    };
    let rules = vec![
        rule(0, "table", Some(255)),
        marked(5210, "table", Some(254)),
        marked(5230, "table", Some(253)),
        marked(5250, "unreachable", None),
        rule(5270, "table", Some(52)),
        rule(32766, "table", Some(254)),
        rule(32767, "table", Some(253)),
    ];
    let mut routes = vec![
        route(52, "unicast", "0.0.0.0/0", Some("tailscale0"), None),
        route(52, "throw", "10.10.10.0/24", None, None),
        route(254, "unicast", "192.168.1.0/24", Some("enp1s0"), None),
        route(255, "local", "192.168.1.1/32", Some("enp1s0"), None),
    ];
    if with_throw {
        routes.push(route(52, "throw", "192.168.1.0/24", None, None));
    }
    (rules, routes)
}

fn verdicts(w: &Walk) -> Vec<(u32, &'static str)> {
    w.steps
        .iter()
        .map(|s| (s.rule.priority.unwrap_or(0), s.verdict))
        .collect()
}

#[test]
fn the_throw_route_sends_the_walk_on_to_main() {
    let (rules, routes) = lab(true);
    let w = walk(&rules, &routes, &ask("192.168.1.90", Some("tailscale0")));
    assert_eq!(
        verdicts(&w),
        [
            (0, "no_match"),
            (5210, "skipped"),
            (5230, "skipped"),
            (5250, "skipped"),
            (5270, "no_match"),
            (32766, "matched")
        ]
    );
    assert!(
        w.steps[4]
            .reason
            .as_deref()
            .unwrap()
            .contains("throw 192.168.1.0/24")
    );
    let r = w.route.unwrap();
    assert_eq!((r.table, r.dev.as_deref()), (Some(254), Some("enp1s0")));
    assert_eq!(w.error, None);
}

#[test]
fn without_the_throw_route_table_52_sends_it_back() {
    let (rules, routes) = lab(false);
    let w = walk(&rules, &routes, &ask("192.168.1.90", Some("tailscale0")));
    assert_eq!(verdicts(&w).last(), Some(&(5270, "matched")));
    let r = w.route.unwrap();
    assert_eq!((r.table, r.dev.as_deref()), (Some(52), Some("tailscale0")));
    // A marked packet meets the unreachable rule first.
    let marked = Question {
        mark: 0x80000,
        ..ask("8.8.8.8", Some("tailscale0"))
    };
    let (rules, mut routes) = lab(false);
    routes.retain(|r| r.table != Some(254) || r.dst.as_deref() != Some("0.0.0.0/0"));
    let w = walk(&rules, &routes, &marked);
    assert_eq!(verdicts(&w).last(), Some(&(5250, "stop")));
    assert_eq!(w.error, Some(WalkError::Enetunreach));
}

#[test]
fn longest_prefix_then_lowest_metric_and_rejects() {
    let rules = vec![rule(100, "table", Some(100)), rule(200, "table", Some(200))];
    let routes = vec![
        route(100, "unicast", "10.0.0.0/8", Some("a"), Some(10)),
        route(100, "unicast", "10.1.0.0/16", Some("b"), Some(100)),
        route(100, "unicast", "10.1.0.0/16", Some("c"), Some(20)),
        route(100, "blackhole", "10.2.0.0/16", None, None),
        route(100, "throw", "10.3.0.0/16", None, None),
        route(200, "prohibit", "0.0.0.0/0", None, None),
    ];
    let w = walk(&rules, &routes, &ask("10.1.2.3", None));
    assert_eq!(w.route.unwrap().dev.as_deref(), Some("c"));
    let w = walk(&rules, &routes, &ask("10.2.2.3", None));
    assert_eq!(w.error, Some(WalkError::Einval));
    let w = walk(&rules, &routes, &ask("10.3.2.3", None));
    assert_eq!(
        (w.error, verdicts(&w).last()),
        (Some(WalkError::Eacces), Some(&(200, "matched")))
    );
    let w = walk(&rules, &routes, &ask("11.0.0.1", Some("x")));
    assert_eq!(w.error, Some(WalkError::Eacces));
}

#[test]
fn goto_suppress_nop_and_selectors_it_cannot_evaluate() {
    let mut rules = vec![
        Rule {
            goto: Some(300),
            ..rule(100, "goto", None)
        },
        rule(200, "table", Some(100)),
        rule(300, "nop", None),
        Rule {
            suppress_prefixlen: Some(0),
            ..rule(400, "table", Some(100))
        },
        Rule {
            uid_range: Some("1000-2000".into()),
            ..rule(450, "table", Some(100))
        },
        rule(500, "table", Some(200)),
    ];
    let routes = vec![
        route(100, "unicast", "0.0.0.0/0", Some("a"), None),
        route(200, "unicast", "10.0.0.0/8", Some("b"), None),
    ];
    let w = walk(&rules, &routes, &ask("10.9.9.9", None));
    assert_eq!(
        verdicts(&w),
        [
            (100, "goto"),
            (300, "no_match"),
            (400, "suppressed"),
            (450, "unknown"),
            (500, "matched")
        ]
    );
    assert_eq!(w.unknown.len(), 1, "{:?}", w.unknown);
    assert!(w.unknown[0].contains("give --uid"));
    // A forwarded packet counts as uid 0: the uid rule is known not to match.
    let w = walk(&rules, &routes, &ask("10.9.9.9", Some("eth0")));
    assert!(w.unknown.is_empty());
    // iif lo selects what the host itself sends.
    rules.insert(
        0,
        Rule {
            iif: Some("lo".into()),
            ..rule(50, "table", Some(200))
        },
    );
    let w = walk(&rules, &routes, &ask("10.9.9.9", None));
    assert_eq!(verdicts(&w), [(50, "matched")]);
    let w = walk(&rules, &routes, &ask("10.9.9.9", Some("eth0")));
    assert_eq!(verdicts(&w)[0], (50, "skipped"));
}

#[test]
fn ipv6_uses_its_own_rules_and_tables() {
    let (mut rules, mut routes) = lab(true);
    rules.push(Rule {
        family: Some(Family::Inet6),
        ..rule(32766, "table", Some(254))
    });
    routes.push(route(
        254,
        "unicast",
        "fd00::/64",
        Some("enp1s0"),
        Some(1024),
    ));
    routes.push(route(254, "unicast", "fd00::/64", Some("other"), Some(256)));
    let w = walk(&rules, &routes, &ask("fd00::5", Some("tailscale0")));
    assert_eq!(verdicts(&w), [(32766, "matched")]);
    assert_eq!(w.route.unwrap().dev.as_deref(), Some("other"));
    let w = walk(&rules, &routes, &ask("fd01::5", Some("tailscale0")));
    assert_eq!(w.error, Some(WalkError::Enetunreach));
}
