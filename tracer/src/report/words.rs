//! The words a report is written in: times in the chosen zone, actors,
//! objects, counts and lists. Shared by the report's header and footer
//! (`text.rs`) and its timeline items (`text_items.rs`).
use std::fmt::Write as _;

use chrono::FixedOffset;

use super::{
    identity::{Actor, Object},
    model::{Episode, NexthopDeletion, Time},
};
pub use crate::zone::Zone;
use crate::{
    describe,
    escape::{escape_escaped, escape_str},
    event::{Cause, LoopLookup, Netns, Route},
};

/// The most objects listed by name in one line.
pub(super) const LIST_MAX: usize = 8;
/// The most objects given a line of their own under one episode.
pub(super) const LINES_MAX: usize = 20;
/// The most missing objects listed at the end.
pub(super) const MISSING_MAX: usize = 100;
pub(super) const INDENT: &str = "          ";

pub(super) struct Fmt {
    pub(super) zone: Zone,
    /// Namespaces are named only when the report has more than one.
    pub(super) many_ns: bool,
}

impl Fmt {
    pub(super) fn offset(&self, t: Time) -> FixedOffset {
        self.zone.offset(t)
    }
    pub(super) fn date(&self, t: Time) -> String {
        t.with_timezone(&self.offset(t))
            .format("%Y-%m-%d")
            .to_string()
    }
    pub(super) fn time(&self, t: Time) -> String {
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
    pub(super) fn full(&self, t: Time) -> String {
        format!("{} {}", self.date(t), self.time(t))
    }
    pub(super) fn zone_name(&self, t: Time) -> String {
        match self.zone {
            Zone::Utc => "UTC".into(),
            Zone::Local => format!("local time ({})", self.zone.label(t)),
        }
    }
    /// "UTC", or the local offset as "UTC+09:00" (`Zone::label`).
    pub(super) fn zone_short(&self, t: Time) -> String {
        self.zone.label(t)
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
    if a.guard {
        return format!("the guard ({pids}, tracer guard --repair)");
    }
    match (&a.unit, &a.comm) {
        (Some(u), Some(c)) => format!("{} ({pids}, {})", escape_str(u), escape_escaped(c)),
        (Some(u), None) => format!("{} ({pids})", escape_str(u)),
        (None, Some(c)) => format!("{} ({pids})", escape_escaped(c)),
        (None, None) => "the kernel".into(),
    }
}

/// "throw 192.168.1.0/24 table 52", "default dev tailscale0 table 52".
pub fn route_short(r: &Route) -> String {
    let mut s = escape_str(&crate::describe::route_short(r));
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

/// A route's or nexthop object's device ("d2", or "#5" when no event
/// named it), escaped.
pub fn device(o: &Object) -> Option<String> {
    let (dev, index) = match o {
        Object::Route(r) => {
            let hop = r.nexthops.first();
            (
                r.dev.as_ref().or(hop.and_then(|h| h.dev.as_ref())),
                r.ifindex.or(hop.and_then(|h| h.ifindex)),
            )
        }
        Object::Nexthop(n) => (n.dev.as_ref(), n.ifindex),
        Object::Rule(_) => return None,
    };
    match (dev, index) {
        (Some(d), _) => Some(escape_str(d)),
        (None, Some(i)) => Some(format!("#{i}")),
        _ => None,
    }
}

/// The full `ip rule` / `ip route` / `ip nexthop` description.
pub fn object(o: &Object) -> String {
    match o {
        Object::Rule(r) => format!("rule {}", describe::rule(r)),
        Object::Route(r) => describe::route(r),
        Object::Nexthop(n) => format!("nexthop {}", describe::nexthop(n)),
    }
}

/// "with nexthop 10 (deleted by ip (pid 1234) at 12:00:01)".
pub(super) fn with_nexthop(w: &NexthopDeletion, f: &Fmt, day: &str) -> String {
    format!(
        "with nexthop {} (deleted by {} at {})",
        w.id,
        actor(&w.by),
        f.time_on(w.ts, day)
    )
}

/// "removed 1 nexthop (id 10 via 10.9.0.2 dev v0) and 1 route (...) (the
/// kernel, with nexthop 10)": an episode's removals, with why the kernel
/// made those it made (after a link went down, with a nexthop object).
pub(super) fn removed(e: &Episode) -> String {
    let mut s = format!("removed {}", counted(e.removed.iter().map(|r| &r.object)));
    let mut causes: Vec<String> = Vec::new();
    let mut nhids: Vec<String> = Vec::new();
    for r in &e.removed {
        match (r.cause, &r.with_nexthop) {
            (Some(Cause::NexthopDel), Some(w)) => nhids.push(w.id.to_string()),
            (Some(c), _) => causes.push(c.as_str().to_string()),
            (None, _) => {}
        }
    }
    causes.sort_unstable();
    causes.dedup();
    nhids.dedup();
    let mut why = Vec::new();
    if !causes.is_empty() {
        why.push(format!("after {}", causes.join(", ")));
    }
    if !nhids.is_empty() {
        let one = if nhids.len() == 1 { "" } else { "s" };
        why.push(format!("with nexthop{one} {}", listed(&nhids)));
    }
    if !why.is_empty() {
        let by = if e.actor.comm.is_some() {
            "the kernel, "
        } else {
            ""
        };
        let _ = write!(s, " ({by}{})", why.join("; "));
    }
    s
}

pub(super) fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

pub(super) fn listed(items: &[String]) -> String {
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

/// "4 rules (5210, 5230, 5250, 5270) and 1 route (throw 192.168.1.0/24
/// table 52)"; nexthop objects first: "1 nexthop (id 10 via 10.9.0.2 dev
/// v0) and 1 route (...)".
pub fn counted<'a>(objects: impl IntoIterator<Item = &'a Object>) -> String {
    let (mut rules, mut routes, mut nexthops) = (Vec::new(), Vec::new(), Vec::new());
    for o in objects {
        match o {
            Object::Rule(r) => rules.push(r.priority.map_or("?".into(), |p| p.to_string())),
            Object::Route(r) => routes.push(route_short(r)),
            Object::Nexthop(n) => nexthops.push(describe::nexthop(n)),
        }
    }
    let mut parts = Vec::new();
    if !nexthops.is_empty() {
        parts.push(format!(
            "{} ({})",
            plural(nexthops.len(), "nexthop"),
            listed(&nexthops)
        ));
    }
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

/// "rule 5270 -> table 52 -> default dev tailscale0"; None when the lookup
/// says nothing.
pub(super) fn lookup_path(k: &LoopLookup) -> Option<String> {
    let mut path = Vec::new();
    if let Some(p) = k.rule_priority {
        path.push(format!("rule {p}"));
    }
    if let Some(t) = k.table {
        path.push(format!("table {t}"));
    }
    if let Some(r) = &k.route {
        path.push(escape_str(r));
    }
    (!path.is_empty()).then(|| path.join(" -> "))
}

/// What a report read: "lab.jsonl", "2 files in /var/lib/tracer/journal",
/// "3 files".
pub(super) fn inputs_name(inputs: &[String]) -> String {
    let dirs: Vec<Option<&std::path::Path>> = inputs
        .iter()
        .map(|i| std::path::Path::new(i).parent())
        .collect();
    match (inputs, dirs.first()) {
        ([], _) => "no files".to_string(),
        ([one], _) => escape_str(one),
        (many, Some(Some(dir)))
            if dirs.windows(2).all(|w| w[0] == w[1]) && !dir.as_os_str().is_empty() =>
        {
            format!(
                "{} files in {}",
                many.len(),
                escape_str(&dir.display().to_string())
            )
        }
        (many, _) => format!("{} files", many.len()),
    }
}

/// "rule 5270", "throw 192.168.1.0/24 table 52".
pub(super) fn short(o: &Object) -> String {
    match o {
        Object::Rule(r) => format!("rule {}", r.priority.map_or("?".into(), |p| p.to_string())),
        Object::Route(r) => route_short(r),
        Object::Nexthop(n) => format!("nexthop {}", n.id),
    }
}

/// "0s", "42s", "3m 5s", "5h 49m", "2d 3h".
pub(super) fn duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::inputs_name;

    fn names(v: &[&str]) -> String {
        inputs_name(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// No input was a panic (an index into nothing), found by the fuzz
    /// target of the journal readers.
    #[test]
    fn inputs_are_named_whatever_their_number() {
        assert_eq!(names(&[]), "no files");
        assert_eq!(names(&["lab.jsonl"]), "lab.jsonl");
        assert_eq!(names(&["/j/a.jsonl", "/j/b.jsonl"]), "2 files in /j");
        assert_eq!(names(&["/j/a.jsonl", "/k/b.jsonl"]), "2 files");
        // Relative names in the working directory: no empty directory name.
        assert_eq!(names(&["a.jsonl", "b.jsonl"]), "2 files");
    }
}
