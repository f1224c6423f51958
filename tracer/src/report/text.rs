//! The report as text: a header, the timeline (one line per episode, loop
//! or session, then indented lines of what became of it), what is still
//! missing, and the lines skipped. Strings from the journal are escaped.
use std::fmt::Write as _;

use chrono::Utc;

use super::{
    model::{Item, Report, SnapshotItem},
    text_items as items,
    words::*,
};
use crate::escape::escape_str;

pub use super::words::Zone;

pub fn render(r: &Report, zone: Zone) -> String {
    let f = Fmt {
        zone,
        many_ns: r.namespaces.len() > 1,
    };
    let mut out = String::new();
    header(&mut out, r, &f);
    let mut day = String::new();
    for item in &r.timeline {
        let d = f.date(item.ts());
        if d != day {
            let _ = writeln!(out, "-- {d} --");
            day = d;
        }
        let _ = write!(out, "{}  ", f.time(item.ts()));
        match item {
            Item::Session(s) => {
                let _ = write!(
                    out,
                    "tracer started (pid {}, version {})",
                    s.pid.map_or("?".into(), |p| p.to_string()),
                    s.version.as_deref().map_or("?".into(), escape_str)
                );
                if !s.namespaces.is_empty() {
                    let names: Vec<String> = s.namespaces.iter().map(ns).collect();
                    let _ = write!(out, ", watching netns {}", names.join(", "));
                }
                out.push('\n');
            }
            Item::Snapshot(s) => snapshot(&mut out, s),
            Item::Episode(e) => items::episode(&mut out, e, &f, &day),
            Item::Loop(l) => items::loop_item(&mut out, l, &f, &day),
            Item::Lost(l) => {
                let _ = writeln!(
                    out,
                    "LOST {} records ({}): changes may be missing from this report",
                    l.count,
                    escape_str(&l.location)
                );
            }
            Item::Journal(j) => {
                let _ = match &j.error {
                    Some(e) => writeln!(
                        out,
                        "the journal could not be written ({}): events may be missing from here on",
                        escape_str(e)
                    ),
                    None => writeln!(
                        out,
                        "the journal is written again ({} events were lost meanwhile)",
                        j.dropped
                    ),
                };
            }
        }
    }
    footer(&mut out, r, &f);
    out
}

fn header(out: &mut String, r: &Report, f: &Fmt) {
    let what = inputs_name(&r.inputs);
    let _ = write!(out, "Report of {what}: {}", plural(r.events, "event"));
    if let (Some(a), Some(b)) = (r.first, r.last) {
        let _ = write!(out, " from {} to {}", f.full(a), f.time_on(b, &f.date(a)));
    }
    out.push('\n');
    if r.since.is_some() || r.until.is_some() {
        let since = r.since.map_or("the start".into(), |t| f.full(t));
        let until = r.until.map_or("the end".into(), |t| f.full(t));
        let _ = writeln!(out, "Window: {since} to {until}");
    }
    if !r.filters.is_empty() {
        let _ = writeln!(out, "Only: {}", escape_str(&r.filters.join(", ")));
    }
    if r.namespaces.len() == 1 {
        let _ = writeln!(out, "Namespace: {}", ns(&r.namespaces[0]));
    }
    let t = r.first.unwrap_or_else(Utc::now);
    let _ = writeln!(out, "Times are {}.\n", f.zone_name(t));
    if r.timeline.is_empty() {
        let _ = writeln!(out, "Nothing to report in this window.");
    }
}

fn snapshot(out: &mut String, s: &SnapshotItem) {
    let _ = writeln!(
        out,
        "snapshot of netns {}: {} and {}{}",
        ns(&s.netns),
        plural(s.rules, "rule"),
        plural(s.routes, "route"),
        if s.complete { "" } else { " (incomplete)" }
    );
}

fn footer(out: &mut String, r: &Report, f: &Fmt) {
    let end = r.end.map(|t| f.full(t)).unwrap_or_else(|| "?".into());
    out.push('\n');
    if r.missing.is_empty() {
        let _ = writeln!(
            out,
            "Nothing removed in this window is missing at its end ({end})."
        );
    } else {
        let _ = writeln!(out, "Still missing at the end ({end}):");
        for m in r.missing.iter().take(MISSING_MAX) {
            let _ = write!(
                out,
                "  {}{}, removed at {} by {}",
                object(&m.object),
                f.in_ns(&m.netns),
                f.full(m.removed_at),
                actor(&m.removed_by)
            );
            if let Some(w) = &m.with_nexthop {
                let _ = write!(out, " {}", with_nexthop(w, f, &f.date(m.removed_at)));
            }
            out.push('\n');
        }
        if r.missing.len() > MISSING_MAX {
            let _ = writeln!(
                out,
                "  and {} more (--json lists them all)",
                r.missing.len() - MISSING_MAX
            );
        }
    }
    if !r.not_shown.is_empty() {
        let kinds: Vec<String> = r
            .not_shown
            .iter()
            .map(|(k, n)| format!("{} {n}", escape_str(k)))
            .collect();
        let n: usize = r.not_shown.values().sum();
        let _ = writeln!(
            out,
            "Not shown: {} of other kinds ({}).",
            plural(n, "event"),
            kinds.join(", ")
        );
    }
    if !r.problems.is_empty() {
        let _ = writeln!(out, "Skipped {}:", plural(r.problems.len(), "line"));
        for p in &r.problems {
            let _ = writeln!(out, "  {}", escape_str(&p.to_string()));
        }
    }
}
