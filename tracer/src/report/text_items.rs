//! The text of the timeline's episodes and loops: a summary line, then
//! indented lines of what became of each removal (restored, back in a
//! snapshot, still missing), what each addition put back, and failures.
use std::fmt::Write as _;

use chrono::Utc;

use super::{
    identity::Object,
    model::{Added, Episode, Fate, FateState, LoopItem, Removed, Replaced},
    words::{
        Fmt, INDENT, LINES_MAX, actor, counted, device, lookup_path, ns, object, plural, removed,
        route_short, with_nexthop,
    },
};
use crate::escape::escape_str;

pub(super) fn episode(out: &mut String, e: &Episode, f: &Fmt, day: &str) {
    let (replaced, added): (Vec<&Added>, Vec<&Added>) =
        e.added.iter().partition(|a| a.replaces.is_some());
    summary(out, e, f, &replaced, &added);
    removals(out, e, f, day);
    restorations(out, e, f, day);
    replacements(out, &replaced, f);
    failures(out, e);
}

/// The episode's first line: who removed, added, replaced or failed what.
fn summary(out: &mut String, e: &Episode, f: &Fmt, replaced: &[&Added], added: &[&Added]) {
    let mut did = Vec::new();
    if !e.removed.is_empty() {
        did.push(removed(e));
    }
    if !added.is_empty() {
        did.push(format!(
            "added {}",
            counted(added.iter().map(|a| &a.object))
        ));
    }
    let _ = writeln!(out, "{}", summary_line(e, f, did, replaced));
}

/// The end of an episode's summary, shared with the postmortem: what it
/// replaced and what failed, then who did it all, and where.
pub(super) fn summary_line(
    e: &Episode,
    f: &Fmt,
    mut did: Vec<String>,
    replaced: &[&Added],
) -> String {
    if !replaced.is_empty() {
        did.push(format!(
            "replaced {}",
            counted(replaced.iter().map(|a| &a.object))
        ));
    }
    if !e.failed.is_empty() {
        did.push(format!("failed {}", plural(e.failed.len(), "request")));
    }
    let nss: Vec<String> = e.netns.iter().map(ns).collect();
    let in_ns = if f.many_ns {
        format!(" in netns {}", nss.join(", "))
    } else {
        String::new()
    };
    format!("{} {}{in_ns}", actor(&e.actor), did.join("; "))
}

/// What became of the removals: restored (grouped by who and when), back
/// in a snapshot, still missing (one line each).
fn removals(out: &mut String, e: &Episode, f: &Fmt, day: &str) {
    let mut groups: Vec<(String, Vec<&Removed>)> = Vec::new();
    let mut missing = Vec::new();
    for r in &e.removed {
        match fate_words(&r.fate, &r.object, f, day) {
            None => missing.push(r),
            Some(w) => match groups.iter_mut().find(|(g, _)| *g == w) {
                Some((_, v)) => v.push(r),
                None => groups.push((w, vec![r])),
            },
        }
    }
    for (words, rs) in groups {
        let _ = writeln!(
            out,
            "{INDENT}{words}: {}",
            counted(rs.iter().map(|r| &r.object))
        );
    }
    for r in missing.iter().take(LINES_MAX) {
        let _ = write!(
            out,
            "{INDENT}still missing: {}{}",
            object(&r.object),
            f.in_ns(&r.netns)
        );
        if let Some(w) = &r.with_nexthop {
            let _ = write!(out, ", removed {}", with_nexthop(w, f, day));
        }
        out.push('\n');
    }
    if missing.len() > LINES_MAX {
        let _ = writeln!(
            out,
            "{INDENT}still missing: {} more",
            missing.len() - LINES_MAX
        );
    }
}

/// What the additions put back, grouped by who removed it and when.
fn restorations(out: &mut String, e: &Episode, f: &Fmt, day: &str) {
    let mut back: Vec<(String, Vec<&Added>)> = Vec::new();
    for a in &e.added {
        let Some(o) = &a.restores else { continue };
        let w = format!(
            "puts back what {} removed at {}",
            actor(&o.by),
            f.time_on(o.ts, day)
        );
        match back.iter_mut().find(|(g, _)| *g == w) {
            Some((_, v)) => v.push(a),
            None => back.push((w, vec![a])),
        }
    }
    for (words, adds) in back {
        let _ = writeln!(
            out,
            "{INDENT}{words}: {}",
            counted(adds.iter().map(|a| &a.object))
        );
    }
}

/// One line per replaced route or nexthop object: the old and the new.
fn replacements(out: &mut String, replaced: &[&Added], f: &Fmt) {
    for a in replaced.iter().take(LINES_MAX) {
        let (old, new) = match (&a.replaces, &a.object) {
            (Some(Replaced::Route(old)), Object::Route(new)) => {
                (route_short(old), route_short(new))
            }
            (Some(Replaced::Nexthop(old)), o @ Object::Nexthop(_)) => {
                (object(&Object::Nexthop(old.clone())), object(o))
            }
            _ => continue,
        };
        let _ = writeln!(
            out,
            "{INDENT}replaced: {old} with {new}{}",
            f.in_ns(&a.netns)
        );
    }
}

/// One line per failed request.
fn failures(out: &mut String, e: &Episode) {
    for x in e.failed.iter().take(LINES_MAX) {
        let _ = writeln!(
            out,
            "{INDENT}failed: {} {}: {}",
            x.kind,
            object(&x.object),
            escape_str(&x.result)
        );
    }
}

/// "restored at 22:32:40 by tailscaled (pid 2783)", "gone with interface
/// d2"; None when missing.
pub(super) fn fate_words(fate: &Fate, o: &Object, f: &Fmt, day: &str) -> Option<String> {
    let at = fate.ts.map(|t| f.time_on(t, day)).unwrap_or_default();
    match fate.state {
        FateState::Missing => None,
        FateState::Restored if fate.by.as_ref().is_some_and(|b| b.guard) => {
            Some(format!("repaired by the guard at {at}"))
        }
        FateState::Restored => Some(format!(
            "restored at {at} by {}",
            fate.by.as_ref().map_or("?".into(), actor)
        )),
        FateState::InSnapshot => Some(format!(
            "back in the snapshot at {at} (put back while nothing was recording)"
        )),
        FateState::GoneWithInterface => Some(match device(o) {
            Some(d) => format!("gone with interface {d} (deleted)"),
            None => "gone with its interface (deleted)".to_string(),
        }),
    }
}

pub(super) fn loop_item(out: &mut String, l: &LoopItem, f: &Fmt, day: &str) {
    let o = &l.original;
    let _ = write!(
        out,
        "LOOP on {}{}: {} > {} {} comes back out of {}",
        escape_str(&l.iface),
        f.in_ns(&l.netns),
        o.src,
        o.dst,
        escape_str(&o.proto),
        escape_str(&l.iface)
    );
    if l.snat {
        let _ = write!(out, " from {}", l.looped.src);
    }
    if let Some(path) = l.lookup.as_ref().and_then(lookup_path) {
        let _ = write!(out, " ({path})");
    }
    out.push('\n');
    if let Some(s) = &l.suspect {
        let what = match &s.object {
            Object::Route(r) => route_short(r),
            o => object(o),
        };
        let when = chrono::DateTime::parse_from_rfc3339(&s.ts)
            .map(|t| f.time_on(t.with_timezone(&Utc), day))
            .unwrap_or_else(|_| escape_str(&s.ts));
        let _ = write!(
            out,
            "{INDENT}suspect: {what} {} at {when} by {}",
            s.verb(),
            actor(&s.by)
        );
        match s
            .fate
            .as_ref()
            .map(|x| (x.state, fate_words(x, &s.object, f, day)))
        {
            Some((FateState::Missing, _)) => out.push_str(", still missing"),
            Some((_, Some(w))) => {
                let _ = write!(out, ", {w}");
            }
            _ => {}
        }
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "{INDENT}suspect: none seen ({})",
            escape_str(&l.advice)
        );
    }
    let _ = match l.ended {
        Some(t) => writeln!(
            out,
            "{INDENT}{} looped, until {}",
            plural(l.packets as usize, "packet"),
            f.time_on(t, day)
        ),
        None => writeln!(
            out,
            "{INDENT}{} looped by its last report in the window; no loop_end",
            plural(l.packets as usize, "packet")
        ),
    };
}
