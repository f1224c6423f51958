//! `state --diff`: what changed between two moments, each difference with
//! the change that made it and who made it; and what changed and came back
//! in between.
use std::fmt::Write as _;

use super::{Clock, caveats, ipstyle, routes_of, rules_of};
use crate::{
    escape::{escape_escaped, escape_str},
    event::{Cause, Family, Op, Route, Rule},
    journal::state::{Applied, NsState, Rebuilt, route_key, rule_key, same_netns},
    netlink::names::TableNames,
};

fn same_route(a: &Route, b: &Route) -> bool {
    route_key(a) == route_key(b)
        && a.rtype == b.rtype
        && a.gateway == b.gateway
        && (a.dev == b.dev || (a.ifindex.is_some() && a.ifindex == b.ifindex))
}

/// "removed 2026-11-24 22:55:04.988908 UTC by systemd-network (pid 451)".
fn by(a: &Applied, clock: Clock) -> String {
    let what = match (a.op, &a.old) {
        (Op::Add, Some(_)) => "replaced",
        (Op::Add, None) => "added",
        (Op::Del, _) => "removed",
    };
    let who = match (&a.process, a.cause) {
        (Some(p), _) => {
            let unit = p
                .unit
                .as_deref()
                .map(|u| format!(", {}", escape_str(u)))
                .unwrap_or_default();
            format!(" by {} (pid {}{unit})", escape_escaped(&p.comm), p.pid)
        }
        (None, Some(c)) => format!(" by the kernel ({})", c.as_str()),
        (None, None) => " by an unknown process".into(),
    };
    let with = match (a.cause, a.cause_nhid) {
        (Some(Cause::NexthopDel), Some(id)) => format!(", with nexthop {id} (deleted)"),
        (Some(Cause::NexthopReplace), Some(id)) => format!(", through nexthop {id} (replaced)"),
        _ => String::new(),
    };
    format!("{what} {}{who}{with}", clock.show(a.ts))
}

/// The log's changes of `s`'s namespace.
fn log_of<'a>(r: &'a Rebuilt, s: &NsState) -> Vec<&'a Applied> {
    r.log
        .iter()
        .filter(|a| same_netns(&a.netns, &s.netns))
        .collect()
}

fn rule_changes<'a>(log: &[&'a Applied], r: &Rule) -> Vec<&'a Applied> {
    let k = rule_key(r);
    log.iter()
        .filter(|a| a.rule.as_ref().is_some_and(|x| rule_key(x) == k))
        .copied()
        .collect()
}

fn route_changes<'a>(log: &[&'a Applied], r: &Route) -> Vec<&'a Applied> {
    log.iter()
        .filter(|a| {
            a.route.as_ref().is_some_and(|x| same_route(x, r))
                || a.old.as_ref().is_some_and(|x| same_route(x, r))
        })
        .copied()
        .collect()
}

/// One difference: `-`/`+`, the object, and the last change that made it.
fn line(out: &mut String, sign: char, what: &str, changes: &[&Applied], clock: Clock) {
    let why = changes.last().map_or_else(
        || "not in the journal's changes (seen in a later recording's snapshot)".to_string(),
        |a| by(a, clock),
    );
    let _ = writeln!(out, "{sign} {what}\n      {why}");
}

pub(super) fn show(
    (s1, t1): (&NsState, chrono::DateTime<chrono::Utc>),
    s2: &NsState,
    r2: &Rebuilt,
    clock: Clock,
    table: Option<u32>,
    names: &TableNames,
) -> String {
    let mut out = format!(
        "Changes in netns {} from {} to {}:\n",
        crate::describe::netns_label(&s1.netns),
        clock.show(t1),
        r2.at.map_or("?".into(), |t| clock.show(t))
    );
    let log = log_of(r2, s2);
    for c in caveats(s2, r2, clock) {
        let _ = writeln!(out, "Not known: {}", escape_str(&c));
    }
    let mut back = Vec::new();
    for family in [Family::Inet, Family::Inet6] {
        let (a, b) = (rules_of(s1, family, table), rules_of(s2, family, table));
        for r in &a {
            let ch = rule_changes(&log, r);
            if !b.iter().any(|x| rule_key(x) == rule_key(r)) {
                line(&mut out, '-', &ipstyle::rule(r, names), &ch, clock);
            } else if !ch.is_empty() {
                back.push((ipstyle::rule(r, names), ch));
            }
        }
        for r in b
            .iter()
            .filter(|r| !a.iter().any(|x| rule_key(x) == rule_key(r)))
        {
            line(
                &mut out,
                '+',
                &ipstyle::rule(r, names),
                &rule_changes(&log, r),
                clock,
            );
        }
        let (a, b) = (routes_of(s1, family, table), routes_of(s2, family, table));
        for r in &a {
            let ch = route_changes(&log, r);
            if !b.iter().any(|x| same_route(x, r)) {
                line(&mut out, '-', &ipstyle::route(r, names), &ch, clock);
            } else if !ch.is_empty() {
                back.push((ipstyle::route(r, names), ch));
            }
        }
        for r in b.iter().filter(|r| !a.iter().any(|x| same_route(x, r))) {
            line(
                &mut out,
                '+',
                &ipstyle::route(r, names),
                &route_changes(&log, r),
                clock,
            );
        }
    }
    if !back.is_empty() {
        let _ = writeln!(out, "Changed and back again:");
        for (what, ch) in back {
            let _ = writeln!(out, "= {what}");
            for a in ch {
                let _ = writeln!(out, "      {}", by(a, clock));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Netns, Process};

    #[test]
    fn a_change_made_with_a_nexthop_says_which() {
        let a = |cause, cause_nhid| Applied {
            ts: chrono::DateTime::parse_from_rfc3339("2026-04-10T12:00:10Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            op: Op::Del,
            netns: Netns::default(),
            rule: None,
            route: None,
            old: None,
            process: Some(Process {
                pid: 1234,
                comm: "ip".into(),
                ..Process::default()
            }),
            cause,
            cause_nhid,
        };
        let clock = Clock {
            zone: crate::zone::Zone::Utc,
        };
        assert_eq!(
            by(&a(Some(Cause::NexthopDel), Some(10)), clock),
            "removed 2026-04-10 12:00:10.000000 UTC by ip (pid 1234), with nexthop 10 (deleted)"
        );
        assert_eq!(
            by(&a(None, None), clock),
            "removed 2026-04-10 12:00:10.000000 UTC by ip (pid 1234)"
        );
    }
}
