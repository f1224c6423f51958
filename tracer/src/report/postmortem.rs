//! The facts of a postmortem draft, as plain text: a summary line, a
//! timeline (one row per session, episode, loop start and end, loss),
//! root-cause candidates, impact, what was restored and what the record
//! lacks. `markdown.rs` and `html.rs` lay them out and escape every string
//! for their medium; strings from the journal are already free of control
//! characters here (`escape_str`).
use super::{
    identity::{Actor, Key, Object},
    model::{Added, Episode, FateState, Item, LoopItem, Report, Time},
    text_items::{self, fate_words},
    words::*,
};
use crate::escape::escape_str;

/// The most timeline rows; the rest are counted.
pub const ROWS_MAX: usize = 200;
/// The most entries in each list (causes, loops, restorations).
pub const LIST_ITEMS_MAX: usize = 20;

pub struct Postmortem {
    /// The date of the first event, in the chosen zone ("" when none).
    pub date: String,
    pub summary: String,
    /// "15 events in lab.jsonl, 2026-11-24 22:32:38 to 22:32:43".
    pub source: String,
    /// "UTC", "UTC+09:00".
    pub zone: String,
    pub timeline: Vec<Row>,
    /// Rows beyond [`ROWS_MAX`].
    pub rows_left_out: usize,
    pub causes: Vec<String>,
    pub impact: Vec<String>,
    pub restored: Vec<String>,
    pub gaps: Vec<String>,
}

pub struct Row {
    pub time: String,
    pub event: String,
}

pub fn of(r: &Report, zone: Zone) -> Postmortem {
    let f = Fmt {
        zone,
        many_ns: r.namespaces.len() > 1,
    };
    let t0 = r.first.unwrap_or_else(chrono::Utc::now);
    let day = r.first.map(|t| f.date(t)).unwrap_or_default();
    let mut rows = timeline(r, &f, &day);
    let rows_left_out = rows.len().saturating_sub(ROWS_MAX);
    rows.truncate(ROWS_MAX);
    let mut source = format!(
        "{} in {}",
        plural(r.events, "event"),
        inputs_name(&r.inputs)
    );
    if let (Some(a), Some(b)) = (r.first, r.last) {
        source += &format!(", {} to {}", f.full(a), f.time_on(b, &f.date(a)));
    }
    if !r.filters.is_empty() {
        source += &format!(" (only {})", escape_str(&r.filters.join(", ")));
    }
    Postmortem {
        date: day.clone(),
        summary: summary(r, &f, &day),
        source,
        zone: f.zone_short(t0),
        timeline: rows,
        rows_left_out,
        causes: causes(r, &f, &day),
        impact: impact(r, &f, &day),
        restored: restored(r, &f, &day),
        gaps: gaps(r, &f, &day),
    }
}

fn loops(r: &Report) -> impl Iterator<Item = &LoopItem> {
    r.timeline.iter().filter_map(|i| match i {
        Item::Loop(l) => Some(&**l),
        _ => None,
    })
}

fn episodes(r: &Report) -> impl Iterator<Item = &Episode> {
    r.timeline.iter().filter_map(|i| match i {
        Item::Episode(e) => Some(e),
        _ => None,
    })
}

fn timeline(r: &Report, f: &Fmt, day: &str) -> Vec<Row> {
    let mut rows: Vec<(Time, String)> = Vec::new();
    for item in &r.timeline {
        let text = match item {
            Item::Session(s) => {
                let mut t = format!(
                    "tracer started recording (pid {})",
                    s.pid.map_or("?".into(), |p| p.to_string())
                );
                if !s.namespaces.is_empty() {
                    let names: Vec<String> = s.namespaces.iter().map(ns).collect();
                    t += &format!(", watching netns {}", names.join(", "));
                }
                t
            }
            Item::Snapshot(_) => continue,
            Item::Episode(e) => episode(e, f, day),
            Item::Loop(l) => {
                if let Some(end) = l.ended {
                    let text = format!(
                        "Loop on {}{} ended: {} looped in {}",
                        escape_str(&l.iface),
                        f.in_ns(&l.netns),
                        plural(l.packets as usize, "packet"),
                        duration(end - l.ts)
                    );
                    rows.push((end, text));
                }
                loop_words(l, f)
            }
            Item::Lost(l) => format!(
                "{} records lost ({}): changes may be missing from the record",
                l.count,
                escape_str(&l.location)
            ),
            Item::Journal(j) => match &j.error {
                Some(e) => format!("the journal could not be written ({})", escape_str(e)),
                None => format!("the journal is written again ({} events lost)", j.dropped),
            },
        };
        rows.push((item.ts(), text));
    }
    rows.sort_by_key(|(t, _)| *t);
    rows.into_iter()
        .map(|(t, event)| Row {
            time: f.time_on(t, day),
            event,
        })
        .collect()
}

/// "tailscaled (pid 2783) restored 4 rules (...) removed by ... at 22:32:39".
fn episode(e: &Episode, f: &Fmt, day: &str) -> String {
    let mut did = Vec::new();
    if !e.removed.is_empty() {
        did.push(removed(e));
    }
    let (replaced, added): (Vec<&Added>, Vec<&Added>) =
        e.added.iter().partition(|a| a.replaces.is_some());
    let (restoring, plain): (Vec<&Added>, Vec<&Added>) =
        added.into_iter().partition(|a| a.restores.is_some());
    if !plain.is_empty() {
        did.push(format!(
            "added {}",
            counted(plain.iter().map(|a| &a.object))
        ));
    }
    let mut groups: Vec<(String, Vec<&Object>)> = Vec::new();
    for a in &restoring {
        let Some(o) = &a.restores else { continue };
        let w = format!("removed by {} at {}", actor(&o.by), f.time_on(o.ts, day));
        match groups.iter_mut().find(|(g, _)| *g == w) {
            Some((_, v)) => v.push(&a.object),
            None => groups.push((w, vec![&a.object])),
        }
    }
    for (w, objs) in groups {
        did.push(format!("restored {} {w}", counted(objs)));
    }
    text_items::summary_line(e, f, did, &replaced)
}

/// "Routing loop on tailscale0: 100.119.140.15 > 192.168.1.90 icmp comes
/// back out of tailscale0 from 100.98.98.126 (rule 5270 -> ...)".
fn loop_words(l: &LoopItem, f: &Fmt) -> String {
    let o = &l.original;
    let mut s = format!(
        "Routing loop on {}{}: {} > {} {} comes back out of {}",
        escape_str(&l.iface),
        f.in_ns(&l.netns),
        o.src,
        o.dst,
        escape_str(&o.proto),
        escape_str(&l.iface)
    );
    if l.snat {
        s += &format!(" from {}", l.looped.src);
    }
    if let Some(path) = l.lookup.as_ref().and_then(lookup_path) {
        s += &format!(" ({path})");
    }
    s
}

/// "the loop on tailscale0 (100.119.140.15 > 192.168.1.90, rule 5270 -> ...)".
fn loop_ref(l: &LoopItem, f: &Fmt) -> String {
    let mut s = format!(
        "the loop on {}{} ({} > {}",
        escape_str(&l.iface),
        f.in_ns(&l.netns),
        l.original.src,
        l.original.dst
    );
    if let Some(path) = l.lookup.as_ref().and_then(lookup_path) {
        s += &format!(", {path}");
    }
    s + ")"
}

/// "systemd-network (pid 451, exe /usr/bin/ip)".
fn who(a: &Actor) -> String {
    let name = actor(a);
    match (&a.exe, name.strip_suffix(')')) {
        (Some(exe), Some(head)) => format!("{head}, exe {})", escape_str(exe)),
        _ => name,
    }
}

fn causes(r: &Report, f: &Fmt, day: &str) -> Vec<String> {
    let explains = |key: &Key| -> Vec<String> {
        loops(r)
            .filter(|l| {
                l.suspect
                    .as_ref()
                    .is_some_and(|s| Key::new(&s.netns, &s.object) == *key)
            })
            .map(|l| loop_ref(l, f))
            .collect()
    };
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for m in &r.missing {
        let key = Key::new(&m.netns, &m.object);
        let loops = explains(&key);
        let mut s = format!(
            "{}{}: removed at {} by {}",
            object(&m.object),
            f.in_ns(&m.netns),
            f.time_on(m.removed_at, day),
            who(&m.removed_by)
        );
        if let Some(w) = &m.with_nexthop {
            s += &format!(" {}", with_nexthop(w, f, day));
        }
        s += ", still missing at the end";
        if loops.is_empty() {
            s += "; no loop seen that it explains";
        } else {
            s += &format!("; explains {}", loops.join(" and "));
        }
        out.push(s);
        keys.push(key);
    }
    for l in loops(r) {
        let Some(s) = &l.suspect else {
            out.push(format!(
                "{}: no change seen that explains it ({})",
                loop_ref(l, f),
                escape_str(&l.advice)
            ));
            continue;
        };
        let key = Key::new(&s.netns, &s.object);
        if keys.contains(&key) {
            continue;
        }
        let fate = if s.is_removal() {
            s.fate
                .as_ref()
                .and_then(|x| fate_words(x, &s.object, f, day))
                .unwrap_or_else(|| "its fate is not in this record".into())
        } else {
            format!("at {}", escape_str(&s.ts))
        };
        out.push(format!(
            "{}{}: {} by {}, {fate}; explains {}",
            object(&s.object),
            f.in_ns(&s.netns),
            s.verb(),
            who(&s.by),
            loop_ref(l, f)
        ));
        keys.push(key);
    }
    if out.is_empty() {
        out.push(
            "None: nothing removed in this window is missing at its end, and no loop was seen."
                .into(),
        );
    }
    cap(&mut out, "candidates");
    out
}

fn impact(r: &Report, f: &Fmt, day: &str) -> Vec<String> {
    let ls: Vec<&LoopItem> = loops(r).collect();
    let mut out = Vec::new();
    if ls.is_empty() {
        out.push("No routing loop was seen (loops are seen on the interfaces the tracer watched with --iface).".into());
    } else {
        let mut ifaces: Vec<String> = ls.iter().map(|l| escape_str(&l.iface)).collect();
        ifaces.sort();
        ifaces.dedup();
        let packets: u64 = ls.iter().map(|l| l.packets).sum();
        out.push(format!(
            "{} on {} ({}): {} looped in all.",
            plural(ls.len(), "looping flow"),
            plural(ifaces.len(), "interface"),
            listed(&ifaces),
            plural(packets as usize, "packet")
        ));
        for l in &ls {
            let o = &l.original;
            let mut s = format!(
                "{}{}: {} > {} {}: {}, from {}",
                escape_str(&l.iface),
                f.in_ns(&l.netns),
                o.src,
                o.dst,
                escape_str(&o.proto),
                plural(l.packets as usize, "packet"),
                f.time_on(l.ts, day)
            );
            match (l.ended, r.end) {
                (Some(e), _) => s += &format!(" to {} ({})", f.time_on(e, day), duration(e - l.ts)),
                (None, Some(e)) => {
                    s += &format!(
                        ", still looping at the end of the record ({} by then)",
                        duration(e - l.ts)
                    )
                }
                (None, None) => s += ", still looping at the end of the record",
            }
            out.push(s);
        }
    }
    if !r.missing.is_empty() {
        out.push(format!(
            "Still missing at the end ({}): {}.",
            r.end.map(|t| f.full(t)).unwrap_or_else(|| "?".into()),
            counted(r.missing.iter().map(|m| &m.object))
        ));
    }
    let gone: Vec<&Object> = episodes(r)
        .flat_map(|e| &e.removed)
        .filter(|x| x.fate.state == FateState::GoneWithInterface)
        .map(|x| &x.object)
        .collect();
    if !gone.is_empty() {
        let mut devs: Vec<String> = gone.iter().filter_map(|o| device(o)).collect();
        devs.sort();
        devs.dedup();
        out.push(format!(
            "Gone with their deleted interfaces ({}): {}.",
            listed(&devs),
            counted(gone)
        ));
    }
    cap(&mut out, "lines");
    out
}

/// What was put back, grouped by who removed it, when, and what became of
/// it.
fn restored(r: &Report, f: &Fmt, day: &str) -> Vec<String> {
    let mut groups: Vec<(String, Vec<&Object>)> = Vec::new();
    for e in episodes(r) {
        for x in &e.removed {
            if matches!(
                x.fate.state,
                FateState::Missing | FateState::GoneWithInterface
            ) {
                continue;
            }
            let Some(w) = fate_words(&x.fate, &x.object, f, day) else {
                continue;
            };
            let key = format!(
                "removed by {} at {}: {w}",
                actor(&e.actor),
                f.time_on(e.start, day)
            );
            match groups.iter_mut().find(|(g, _)| *g == key) {
                Some((_, v)) => v.push(&x.object),
                None => groups.push((key, vec![&x.object])),
            }
        }
    }
    let mut out: Vec<String> = groups
        .into_iter()
        .map(|(w, objs)| format!("{}, {w}", counted(objs)))
        .collect();
    if out.is_empty() {
        out.push("Nothing removed in this window was put back.".into());
    }
    cap(&mut out, "groups");
    out
}

/// What the record lacks: lost records, journal errors, unreadable lines,
/// snapshots cut short or absent.
fn gaps(r: &Report, f: &Fmt, day: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut snapshots = 0;
    for item in &r.timeline {
        match item {
            Item::Lost(l) => out.push(format!(
                "{} records lost ({}) at {}: changes may be missing",
                l.count,
                escape_str(&l.location),
                f.time_on(l.ts, day)
            )),
            Item::Journal(j) if j.error.is_some() => out.push(format!(
                "The journal could not be written from {} ({})",
                f.time_on(j.ts, day),
                escape_str(j.error.as_deref().unwrap_or_default())
            )),
            Item::Snapshot(s) => {
                snapshots += 1;
                if !s.complete {
                    out.push(format!(
                        "The snapshot of netns {} at {} is incomplete",
                        ns(&s.netns),
                        f.time_on(s.ts, day)
                    ));
                }
            }
            _ => {}
        }
    }
    if snapshots == 0 && r.events > 0 {
        out.push(
            "No snapshot: what was present before the first change is not known (a tracer record journal starts with one)."
                .into(),
        );
    }
    if !r.problems.is_empty() {
        out.push(format!(
            "{} of the journal could not be read (tracer report lists them).",
            plural(r.problems.len(), "line")
        ));
    }
    cap(&mut out, "gaps");
    out
}

fn summary(r: &Report, f: &Fmt, day: &str) -> String {
    let mut parts = Vec::new();
    match r.missing.as_slice() {
        [] => {}
        [m] => parts.push(format!(
            "{}{} was removed by {} at {} and is still missing",
            short(&m.object),
            f.in_ns(&m.netns),
            actor(&m.removed_by),
            f.time_on(m.removed_at, day)
        )),
        ms => parts.push(format!(
            "{} removed and still missing",
            counted(ms.iter().map(|m| &m.object))
        )),
    }
    let ls: Vec<&LoopItem> = loops(r).collect();
    if !ls.is_empty() {
        let mut ifaces: Vec<String> = ls.iter().map(|l| escape_str(&l.iface)).collect();
        ifaces.sort();
        ifaces.dedup();
        let packets: u64 = ls.iter().map(|l| l.packets).sum();
        parts.push(format!(
            "{} on {} ({} looped)",
            plural(ls.len(), "routing loop"),
            listed(&ifaces),
            plural(packets as usize, "packet")
        ));
    }
    let mut restorers: Vec<String> = Vec::new();
    let mut back = Vec::new();
    for x in episodes(r).flat_map(|e| &e.removed) {
        if let (FateState::Restored, Some(by)) = (x.fate.state, &x.fate.by) {
            back.push(&x.object);
            let a = actor(by);
            if !restorers.contains(&a) {
                restorers.push(a);
            }
        }
    }
    if !back.is_empty() {
        parts.push(format!(
            "{} restored by {}",
            counted(back),
            listed(&restorers)
        ));
    }
    if parts.is_empty() {
        let n = episodes(r).count();
        return format!(
            "{} of changes; nothing removed in this window is missing at its end, and no routing loop was seen.",
            plural(n, "episode")
        );
    }
    let mut s = parts.join("; ");
    s.push('.');
    s
}

/// Keeps the first [`LIST_ITEMS_MAX`] lines and counts the rest.
fn cap(lines: &mut Vec<String>, what: &str) {
    if lines.len() > LIST_ITEMS_MAX {
        let more = lines.len() - LIST_ITEMS_MAX;
        lines.truncate(LIST_ITEMS_MAX);
        lines.push(format!(
            "... and {more} more {what} (tracer report --json lists them all)"
        ));
    }
}
