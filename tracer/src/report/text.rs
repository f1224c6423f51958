//! The report as text: a header, the timeline (one line per episode, loop
//! or session, then indented lines of what became of it), what is still
//! missing, and the lines skipped. Strings from the journal are escaped.
use std::fmt::Write as _;

use chrono::{FixedOffset, Local, Offset, TimeZone, Utc};

use super::{
    identity::{Actor, Object},
    model::{Item, Report, SnapshotItem, Time},
    text_items as items,
};
use crate::{
    escape::escape_str,
    event::{Netns, Route},
    output::text,
};

/// The most objects listed by name in one line.
const LIST_MAX: usize = 8;
/// The most objects given a line of their own under one episode.
pub(super) const LINES_MAX: usize = 20;
/// The most missing objects listed at the end.
const MISSING_MAX: usize = 100;
pub(super) const INDENT: &str = "          ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Utc,
    Local,
}

pub(super) struct Fmt {
    zone: Zone,
    /// Namespaces are named only when the report has more than one.
    pub(super) many_ns: bool,
}

impl Fmt {
    fn offset(&self, t: Time) -> FixedOffset {
        match self.zone {
            Zone::Utc => Utc.fix(),
            Zone::Local => Local.offset_from_utc_datetime(&t.naive_utc()).fix(),
        }
    }
    fn date(&self, t: Time) -> String {
        t.with_timezone(&self.offset(t))
            .format("%Y-%m-%d")
            .to_string()
    }
    fn time(&self, t: Time) -> String {
        t.with_timezone(&self.offset(t))
            .format("%H:%M:%S")
            .to_string()
    }
    /// The time of day, with the date when it is not `day`'s.
    pub(super) fn time_on(&self, t: Time, day: &str) -> String {
        if self.date(t) == day {
            self.time(t)
        } else {
            format!("{} {}", self.date(t), self.time(t))
        }
    }
    fn full(&self, t: Time) -> String {
        format!("{} {}", self.date(t), self.time(t))
    }
    fn zone_name(&self, t: Time) -> String {
        match self.zone {
            Zone::Utc => "UTC".into(),
            Zone::Local => format!("local time (UTC{})", self.offset(t)),
        }
    }
    pub(super) fn in_ns(&self, n: &Netns) -> String {
        if self.many_ns {
            format!(" in netns {}", ns(n))
        } else {
            String::new()
        }
    }
}

pub(super) fn ns(n: &Netns) -> String {
    match (&n.name, n.inode) {
        (Some(name), _) => escape_str(name),
        (None, Some(i)) => i.to_string(),
        _ => "?".into(),
    }
}

/// "systemd-networkd.service (pid 812, systemd-network)", "tailscaled (pid
/// 2783)", "the kernel".
pub fn actor(a: &Actor) -> String {
    let pids = match a.pids.as_slice() {
        [] => String::new(),
        [p] => format!("pid {p}"),
        ps => format!(
            "pids {}",
            ps.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    match (&a.unit, &a.comm) {
        (Some(u), Some(c)) => format!("{} ({pids}, {})", escape_str(u), escape_str(c)),
        (Some(u), None) => format!("{} ({pids})", escape_str(u)),
        (None, Some(c)) => format!("{} ({pids})", escape_str(c)),
        (None, None) => "the kernel".into(),
    }
}

/// "throw 192.168.1.0/24 table 52", "default dev tailscale0 table 52".
pub fn route_short(r: &Route) -> String {
    let mut s = escape_str(&crate::packet::cause::route_text(r));
    match (r.table, &r.table_name) {
        (_, Some(n)) => {
            let _ = write!(s, " table {}", escape_str(n));
        }
        (Some(t), None) => {
            let _ = write!(s, " table {t}");
        }
        _ => {}
    }
    s
}

/// The full `ip rule` / `ip route` description.
pub fn object(o: &Object) -> String {
    match o {
        Object::Rule(r) => format!("rule {}", text::rule(r)),
        Object::Route(r) => text::route(r),
    }
}

pub(super) fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn listed(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_MAX {
        let _ = write!(s, " and {} more", items.len() - LIST_MAX);
    }
    s
}

/// "4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24 table 52)".
pub fn counted<'a>(objects: impl IntoIterator<Item = &'a Object>) -> String {
    let (mut rules, mut routes) = (Vec::new(), Vec::new());
    for o in objects {
        match o {
            Object::Rule(r) => rules.push(r.priority.map_or("?".into(), |p| p.to_string())),
            Object::Route(r) => routes.push(route_short(r)),
        }
    }
    let mut parts = Vec::new();
    if !rules.is_empty() {
        parts.push(format!(
            "{} ({})",
            plural(rules.len(), "rule"),
            listed(&rules)
        ));
    }
    if !routes.is_empty() {
        parts.push(format!(
            "{} ({})",
            plural(routes.len(), "route"),
            listed(&routes)
        ));
    }
    parts.join(" and ")
}

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
    let dirs: Vec<Option<&std::path::Path>> = r
        .inputs
        .iter()
        .map(|i| std::path::Path::new(i).parent())
        .collect();
    let what = match r.inputs.as_slice() {
        [one] => escape_str(one),
        many if dirs.windows(2).all(|w| w[0] == w[1]) && dirs[0].is_some() => format!(
            "{} files in {}",
            many.len(),
            escape_str(
                &dirs[0]
                    .unwrap_or(std::path::Path::new(""))
                    .display()
                    .to_string()
            )
        ),
        many => format!("{} files", many.len()),
    };
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
            let _ = writeln!(
                out,
                "  {}{}, removed at {} by {}",
                object(&m.object),
                f.in_ns(&m.netns),
                f.full(m.removed_at),
                actor(&m.removed_by)
            );
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
