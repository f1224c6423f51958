//! `explain` as a person reads it: one screen, the lookup as a chain, the
//! history of the covering routes and the table's rules, then the answer.
use std::fmt::Write as _;

use super::{
    Explanation,
    history::{History, Moment},
    lookup::Lookup,
};
use crate::{
    describe,
    escape::{escape_escaped, escape_str},
    event::{Process, Rule},
    netlink::names::TableNames,
    zone::Zone,
};

/// "2026-04-10 15:52:46 UTC" (or "2026-04-10 17:52:46 UTC+02:00" in a
/// local zone of that offset) from the contract's RFC 3339 time.
fn when(ts: &str, zone: Zone) -> String {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            let t = t.with_timezone(&chrono::Utc);
            let off = zone.offset(t);
            format!(
                "{} {}",
                t.with_timezone(&off).format("%Y-%m-%d %H:%M:%S"),
                zone.label(t)
            )
        })
        .unwrap_or_else(|_| escape_str(ts))
}

/// "systemd-networkd.service (pid 812, systemd-network)".
fn who(p: &Process) -> String {
    let comm = escape_escaped(&p.comm);
    match &p.unit {
        Some(u) => format!("{} (pid {}, {comm})", escape_str(u), p.pid),
        None => format!("{comm} (pid {})", p.pid),
    }
}

/// Why the kernel did it: "link_down", "nexthop 10 deleted".
fn cause(m: &Moment) -> Option<String> {
    Some(match (m.cause.as_deref()?, m.cause_nhid) {
        ("nexthop_del", Some(id)) => format!("nexthop {id} deleted"),
        ("nexthop_replace", Some(id)) => format!("nexthop {id} replaced"),
        (c, _) => c.to_string(),
    })
}

fn moment(m: &Moment, zone: Zone) -> String {
    let mut s = format!("{} {}", m.what, when(&m.ts, zone));
    if let Some(p) = &m.process {
        let _ = write!(s, " by {}", who(p));
    }
    if let Some(c) = cause(m) {
        let _ = write!(s, " ({c})");
    }
    s
}

/// How a route went: "was removed by X (link_down)", or, with a nexthop
/// object's deletion, "went with nexthop 10, deleted by X at T".
fn went(gone: &Moment, zone: Zone) -> String {
    let by = gone
        .process
        .as_ref()
        .map(|p| format!(" by {}", who(p)))
        .unwrap_or_default();
    match (gone.cause.as_deref(), gone.cause_nhid) {
        (Some("nexthop_del"), Some(id)) => {
            format!(
                "went with nexthop {id}, deleted{by} at {}",
                when(&gone.ts, zone)
            )
        }
        _ => {
            let cause = cause(gone).map(|c| format!(" ({c})")).unwrap_or_default();
            format!("was removed{by}{cause}")
        }
    }
}

/// "lookup 52" rather than "inet pref 5270 lookup 52".
fn rule_body(r: &Rule) -> String {
    let t = describe::rule(r);
    t.split_once("pref ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .map_or(t.clone(), |(_, body)| body.to_string())
}

fn table_label(t: u32, names: &TableNames) -> String {
    match names.name(t) {
        Some(n) if n != t.to_string() => format!("{t} ({n})"),
        _ => t.to_string(),
    }
}

fn query_line(l: &Lookup, at: Option<&str>, zone: Zone) -> String {
    let q = &l.query;
    let ns = l
        .netns
        .name
        .as_deref()
        .map(|n| format!(" in netns {}", escape_str(n)))
        .unwrap_or_default();
    let mut s = match at {
        Some(t) => format!("How {} was routed at {}{ns}", q.dst, when(t, zone)),
        None if l.answered_by == "journal" => {
            format!("How {} is routed in the journal's latest state{ns}", q.dst)
        }
        None => format!("How {} is routed now{ns}", q.dst),
    };
    match &q.iif {
        Some(i) => {
            let _ = write!(s, ", for a packet from {}", q.src);
            if q.src_assumed {
                match &q.src_why {
                    Some(why) => {
                        let _ = write!(s, " (assumed: {}; give --from)", escape_str(why));
                    }
                    None => s.push_str(" (assumed: give --from)"),
                }
            }
            let _ = write!(s, " arriving on {}", escape_str(i));
        }
        None => s.push_str(", for a packet this host sends"),
    }
    if q.mark != 0 {
        let _ = write!(s, " with mark {:#x}", q.mark);
    }
    s.push(':');
    s
}

fn step_verdict(verdict: &str, reason: Option<&str>) -> String {
    match (verdict, reason) {
        ("skipped", Some(r)) => format!("skipped: {r}"),
        ("no_match", None) => "no route here, next rule".to_string(),
        ("no_match", Some(r)) => format!("no route here ({r}), next rule"),
        ("matched", _) => "MATCHED".to_string(),
        ("stop", _) => "ends the lookup".to_string(),
        ("goto", Some(r)) => r.to_string(),
        ("suppressed", Some(r)) => format!("{r}, next rule"),
        ("unknown", Some(r)) => format!("not known: {r}"),
        (v, _) => v.to_string(),
    }
}

fn lookup_lines(out: &mut String, l: &Lookup, names: &TableNames, at: Option<&str>, zone: Zone) {
    let _ = writeln!(out, "{}", query_line(l, at, zone));
    for step in &l.rules {
        let verdict = step_verdict(step.verdict, step.reason.as_deref());
        let _ = writeln!(
            out,
            "  rule {:<6} {:<44} {}",
            step.rule.priority.unwrap_or(0),
            rule_body(&step.rule),
            escape_str(&verdict)
        );
    }
    if let Some(r) = &l.route {
        route_lines(out, l, r, names);
    }
    if let Some(e) = &l.error {
        let refused = if l.answered_by == "kernel" {
            "the kernel refused the lookup"
        } else {
            "no route"
        };
        let _ = writeln!(out, "  {refused}: {}", escape_str(e));
        if l.answered_by == "kernel" && own_address(l) {
            let _ = writeln!(
                out,
                "  ({} is one of this host's own addresses: the kernel refuses it as the source of a packet arriving on {}; give --from a host behind it)",
                l.query.src,
                escape_str(l.query.iif.as_deref().unwrap_or("?"))
            );
        }
    }
    if let Some(r) = &l.walk_route {
        let _ = writeln!(out, "  the walk on the rules and routes above ends at:");
        route_lines(out, l, r, names);
    }
    for u in &l.unknown {
        let _ = writeln!(out, "  not known: {}", escape_str(u));
    }
}

/// Whether the query's source is one of the namespace's own addresses.
fn own_address(l: &Lookup) -> bool {
    l.query.iif.is_some()
        && l.routes_now.iter().any(|r| {
            r.rtype.as_deref() == Some("local")
                && r.dst
                    .as_deref()
                    .and_then(crate::prefix::parse)
                    .is_some_and(|n| {
                        n.prefix_len() == n.max_prefix_len() && n.addr() == l.query.src
                    })
        })
}

fn route_lines(out: &mut String, l: &Lookup, r: &crate::event::Route, names: &TableNames) {
    let table = r.table.map(|t| table_label(t, names)).unwrap_or_default();
    let _ = writeln!(
        out,
        "  table {table}: {}",
        escape_str(&describe::route_short(r))
    );
    let unicast = r.rtype.as_deref().is_none_or(|t| t == "unicast");
    if let Some(dev) = r.dev.as_ref().filter(|_| unicast) {
        let back = l.query.iif.as_deref() == Some(dev.as_str());
        let _ = writeln!(
            out,
            "  -> out of {}{}",
            escape_str(dev),
            if back {
                ", the interface it came in on: a forwarding loop"
            } else {
                ""
            }
        );
    }
}

/// One route or rule: what it is, whether it is there now, its history.
fn row(out: &mut String, what: &str, present: bool, moments: &[Moment], zone: Zone) {
    // A route replaced by another (`route_replace`) is gone, not missing.
    let state = match (present, moments.last().map(|m| m.what)) {
        (true, _) => "present",
        (false, Some("replaced")) => "replaced",
        (false, _) => "MISSING",
    };
    let past = if moments.is_empty() {
        "not in the journal".to_string()
    } else {
        moments
            .iter()
            .map(|m| moment(m, zone))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let _ = writeln!(out, "  {:<32} {state:<8} {past}", escape_str(what));
}

fn history_lines(
    out: &mut String,
    e: &Explanation,
    h: &History,
    table: u32,
    names: &TableNames,
    zone: Zone,
) {
    let _ = writeln!(
        out,
        "\nRoutes in table {} covering {} (journal {}, {} events):",
        table_label(table, names),
        e.lookup.query.dst,
        escape_str(e.journal.as_deref().unwrap_or("?")),
        h.events
    );
    for r in &h.routes {
        row(out, &r.route, r.present_now, &r.moments, zone);
    }
    if !h.rules.is_empty() {
        let _ = writeln!(out, "Rules for table {}:", table_label(table, names));
        for r in &h.rules {
            let body = r
                .rule
                .split_once("pref ")
                .map_or(r.rule.clone(), |(_, b)| format!("rule {b}"));
            row(out, &body, r.present_now, &r.moments, zone);
        }
    }
    if !h.problems.is_empty() {
        let _ = writeln!(
            out,
            "({} journal lines could not be read; the first: {})",
            h.problems.len(),
            escape_str(&h.problems[0])
        );
    }
}

/// The missing route more specific than the chosen one (any, when no
/// route was found), in the table looked at: what would have decided
/// instead, and who removed it (or the nexthop deletion it went with).
/// Times in `zone` (the JSON answer's are UTC).
pub fn answer(
    l: &Lookup,
    h: &History,
    names: &TableNames,
    at: Option<&str>,
    zone: Zone,
) -> Option<String> {
    let chosen = l.route.as_ref();
    let chosen_len = chosen
        .and_then(|c| c.dst.as_deref())
        .and_then(crate::prefix::len);
    let missing = h
        .routes
        .iter()
        .find(|r| chosen_len.is_none_or(|len| r.prefix_len > len) && r.removal().is_some())?;
    let gone = missing.removal()?;
    let (still, now) = match at {
        Some(t) => (
            format!("it was still missing at {}", when(t, zone)),
            "then matched",
        ),
        None => ("it is still missing".to_string(), "now matches"),
    };
    let table = l.table().map(|t| table_label(t, names)).unwrap_or_default();
    let so = match chosen {
        Some(c) => format!("{} {now} `{}`", l.query.dst, describe::route_short(c)),
        None => format!("{} has no route there", l.query.dst),
    };
    Some(format!(
        "`{}` existed in table {table} until {} and {}; {still}, so {so}",
        missing.route,
        when(&gone.ts, zone),
        went(gone, zone),
    ))
}

pub fn text(e: &Explanation, names: &TableNames, zone: Zone) -> String {
    let mut out = String::new();
    if let Some(why) = &e.fallback {
        let _ = writeln!(
            out,
            "The live kernel cannot answer ({}); answering from the journal instead.",
            escape_str(why)
        );
    }
    if let Some(s) = &e.lookup.state_from {
        let _ = writeln!(
            out,
            "State rebuilt from the journal: the snapshot of {}, then the changes recorded after it.",
            when(s, zone)
        );
    }
    lookup_lines(&mut out, &e.lookup, names, e.at.as_deref(), zone);
    match (&e.history, e.lookup.table()) {
        (Some(h), Some(t)) => history_lines(&mut out, e, h, t, names, zone),
        _ => {
            if let Some(err) = &e.journal_error {
                let _ = writeln!(out, "\nNo history: {}", escape_str(err));
            }
        }
    }
    if let Some(a) = &e.answer {
        let _ = writeln!(out, "\nAnswer: {}.", escape_str(a));
    }
    out
}
