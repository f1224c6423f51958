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
    escape::escape_str,
    event::{Process, Rule},
    netlink::names::TableNames,
};

/// "2026-04-10 15:52:46 UTC" from the contract's RFC 3339 time.
fn when(ts: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| escape_str(ts))
}

/// "systemd-networkd.service (pid 812, systemd-network)".
fn who(p: &Process) -> String {
    let comm = escape_str(&p.comm);
    match &p.unit {
        Some(u) => format!("{} (pid {}, {comm})", escape_str(u), p.pid),
        None => format!("{comm} (pid {})", p.pid),
    }
}

fn moment(m: &Moment) -> String {
    let mut s = format!("{} {}", m.what, when(&m.ts));
    if let Some(p) = &m.process {
        let _ = write!(s, " by {}", who(p));
    }
    if let Some(c) = &m.cause {
        let _ = write!(s, " ({c})");
    }
    s
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

fn query_line(l: &Lookup) -> String {
    let q = &l.query;
    let ns = l
        .netns
        .name
        .as_deref()
        .map(|n| format!(" in netns {}", escape_str(n)))
        .unwrap_or_default();
    let mut s = format!("How {} is routed now{ns}", q.dst);
    match &q.iif {
        Some(i) => {
            let _ = write!(s, ", for a packet from {}", q.src);
            if q.src_assumed {
                s.push_str(" (assumed: give --from)");
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

fn lookup_lines(out: &mut String, l: &Lookup, names: &TableNames) {
    let _ = writeln!(out, "{}", query_line(l));
    for step in &l.rules {
        let verdict = match (step.verdict, &step.reason) {
            ("skipped", Some(r)) => format!("skipped: {r}"),
            ("no_match", _) => "no route here, next rule".to_string(),
            ("matched", _) => "MATCHED".to_string(),
            ("stop", _) => "ends the lookup".to_string(),
            (v, _) => v.to_string(),
        };
        let _ = writeln!(
            out,
            "  rule {:<6} {:<44} {verdict}",
            step.rule.priority.unwrap_or(0),
            rule_body(&step.rule)
        );
    }
    match (&l.route, &l.error) {
        (Some(r), _) => {
            let table = r.table.map(|t| table_label(t, names)).unwrap_or_default();
            let _ = writeln!(
                out,
                "  table {table}: {}",
                escape_str(&describe::route_short(r))
            );
            if let Some(dev) = &r.dev {
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
        (None, Some(e)) => {
            let _ = writeln!(out, "  no route: {}", escape_str(e));
        }
        (None, None) => {}
    }
}

/// One route or rule: what it is, whether it is there now, its history.
fn row(out: &mut String, what: &str, present: bool, moments: &[Moment]) {
    // A route replaced by another (`route_replace`) is gone, not missing.
    let state = match (present, moments.last().map(|m| m.what)) {
        (true, _) => "present",
        (false, Some("replaced")) => "replaced",
        (false, _) => "MISSING",
    };
    let past = if moments.is_empty() {
        "not in the journal".to_string()
    } else {
        moments.iter().map(moment).collect::<Vec<_>>().join("; ")
    };
    let _ = writeln!(out, "  {:<32} {state:<8} {past}", escape_str(what));
}

fn history_lines(out: &mut String, e: &Explanation, h: &History, table: u32, names: &TableNames) {
    let _ = writeln!(
        out,
        "\nRoutes in table {} covering {} (journal {}, {} events):",
        table_label(table, names),
        e.lookup.query.dst,
        escape_str(e.journal.as_deref().unwrap_or("?")),
        h.events
    );
    for r in &h.routes {
        row(out, &r.route, r.present_now, &r.moments);
    }
    if !h.rules.is_empty() {
        let _ = writeln!(out, "Rules for table {}:", table_label(table, names));
        for r in &h.rules {
            let body = r
                .rule
                .split_once("pref ")
                .map_or(r.rule.clone(), |(_, b)| format!("rule {b}"));
            row(out, &body, r.present_now, &r.moments);
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

/// The missing route more specific than the chosen one, in its table: what
/// would have decided instead, and who removed it.
pub fn answer(l: &Lookup, h: &History, names: &TableNames) -> Option<String> {
    let chosen = l.route.as_ref()?;
    let chosen_len = chosen
        .dst
        .as_deref()
        .and_then(crate::prefix::len)
        .unwrap_or(0);
    let missing = h
        .routes
        .iter()
        .find(|r| r.prefix_len > chosen_len && r.removal().is_some())?;
    let gone = missing.removal()?;
    let by = gone
        .process
        .as_ref()
        .map(|p| format!(" by {}", who(p)))
        .unwrap_or_default();
    let cause = gone
        .cause
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    Some(format!(
        "`{}` existed in table {} until {} and was removed{by}{cause}; it is still missing, so {} now matches `{}`",
        missing.route,
        chosen
            .table
            .map(|t| table_label(t, names))
            .unwrap_or_default(),
        when(&gone.ts),
        l.query.dst,
        describe::route_short(chosen)
    ))
}

pub fn text(e: &Explanation, names: &TableNames) -> String {
    let mut out = String::new();
    lookup_lines(&mut out, &e.lookup, names);
    match (&e.history, e.lookup.route.as_ref().and_then(|r| r.table)) {
        (Some(h), Some(t)) => history_lines(&mut out, e, h, t, names),
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
