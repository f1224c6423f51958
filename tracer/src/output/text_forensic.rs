//! Text lines for the events of `record` and `guard`: snapshot entries,
//! journal health, guard violations, the commands they ran, repairs and
//! reloads.
use std::fmt::Write as _;

use crate::describe::{netns_label, route, rule, who};
use crate::escape::escape_str;
use crate::event::{
    Event, GuardAction, GuardReload, GuardRepair, GuardReport, JournalHealth, Kind, NamespaceSeen,
    SnapshotEnd, StateEntry,
};
use crate::zone::Zone;

pub fn state_line(e: &Event, s: &StateEntry, zone: Zone) -> String {
    let what = match (&s.route, &s.rule) {
        (Some(r), _) => route(r),
        (_, Some(r)) => rule(r),
        _ => String::new(),
    };
    format!(
        "{} snapshot  {what} netns {}",
        zone.stamp(&e.ts),
        netns_label(&s.netns)
    )
}

pub fn snapshot_end_line(e: &Event, s: &SnapshotEnd, zone: Zone) -> String {
    format!(
        "{} snapshot  netns {}: {} rules, {} routes",
        zone.stamp(&e.ts),
        netns_label(&s.netns),
        s.rules,
        s.routes
    )
}

pub fn namespace_line(e: &Event, n: &NamespaceSeen, zone: Zone) -> String {
    let what = if e.kind == Kind::NetnsGone {
        "gone"
    } else {
        "new, watched"
    };
    let inode = n.netns.inode.map(|i| format!(" ({i})")).unwrap_or_default();
    let label = netns_label(&n.netns);
    let inode = if n.netns.name.is_some() {
        inode
    } else {
        String::new()
    };
    format!("{} netns     {label}{inode} {what}", zone.stamp(&e.ts))
}

pub fn journal_line(e: &Event, j: &JournalHealth, zone: Zone) -> String {
    match &j.error {
        Some(err) => format!(
            "{} JOURNAL   cannot write {}: {}; events are kept in memory and tracing goes on",
            zone.stamp(&e.ts),
            escape_str(&j.path),
            escape_str(err)
        ),
        None => format!(
            "{} journal   writing {} again ({} events could not be kept)",
            zone.stamp(&e.ts),
            escape_str(&j.path),
            j.dropped
        ),
    }
}

pub fn guard_line(e: &Event, g: &GuardReport, zone: Zone) -> String {
    let verb = if e.kind == Kind::GuardRestored {
        "restored"
    } else {
        "VIOLATED"
    };
    let mut s = format!(
        "{} guard     {verb}: {} (netns {}) since {}",
        zone.stamp(&e.ts),
        escape_str(&g.expectation),
        netns_label(&g.netns),
        zone.stamp(&g.since)
    );
    match g.change.as_deref().and_then(|c| Some((c, c.change()?))) {
        Some((ev, c)) => {
            let _ = write!(s, " by {} {}", ev.kind.as_str(), who(c));
        }
        None if verb == "VIOLATED" => s.push_str(" (missing when the guard started)"),
        None => {}
    }
    s
}

pub fn action_line(e: &Event, a: &GuardAction, zone: Zone) -> String {
    let status = match (a.exit_code, &a.error) {
        (_, Some(err)) => escape_str(err),
        (Some(c), None) => format!("exit {c}"),
        (None, None) => "killed".into(),
    };
    let mut s = format!(
        "{} guard     ran {:?} for {}: {status} after {} ms",
        zone.stamp(&e.ts),
        escape_str(&a.command),
        escape_str(&a.expectation),
        a.duration_ms
    );
    if a.suppressed > 0 {
        let _ = write!(s, " ({} earlier violations rate-limited)", a.suppressed);
    }
    s
}

/// The removal a repair undoes: "route_del at TS by ip[812] ...".
fn removal_words(r: &GuardRepair, zone: Zone) -> String {
    let e = &r.removal;
    match e.change() {
        Some(c) => format!("{} at {} {}", e.kind.as_str(), zone.stamp(&e.ts), who(c)),
        None => format!("{} at {}", e.kind.as_str(), zone.stamp(&e.ts)),
    }
}

pub fn repair_line(e: &Event, r: &GuardRepair, zone: Zone) -> String {
    let object = match (&r.route, &r.rule) {
        (Some(x), _) => route(x),
        (_, Some(x)) => rule(x),
        _ => "?".into(),
    };
    let head = format!(
        "{} guard     {{}}: {} (netns {})",
        zone.stamp(&e.ts),
        escape_str(&r.expectation),
        netns_label(&r.netns)
    );
    let head = |verb: &str| head.replacen("{}", verb, 1);
    match e.kind {
        Kind::GuardRepairWaiting => format!(
            "{}: cannot put back {object} yet: device {} is missing or down; repairing when it is up",
            head("waiting"),
            escape_str(r.waiting_for.as_deref().unwrap_or("?"))
        ),
        Kind::GuardRepairGaveUp => format!(
            "{}: removed again after {} repairs within {} s, last by {}; not repairing it again, the violation stays open",
            head("GAVE UP"),
            r.attempt,
            r.window_secs,
            r.removal.change().map_or("?".into(), who)
        ),
        _ if r.dry_run => format!(
            "{}: would put back {object} (dry run), undoing {}",
            head("would repair"),
            removal_words(r, zone)
        ),
        _ => {
            let result = r.result.as_deref().unwrap_or("?");
            let verb = if result == "ok" {
                "REPAIRED"
            } else {
                "repair FAILED"
            };
            let mut s = format!(
                "{}: put back {object} (attempt {}/{}): {}",
                head(verb),
                r.attempt,
                r.limit,
                escape_str(result)
            );
            if let Some(ms) = r.ms_after_grace {
                let _ = write!(s, " {ms:.1} ms after the grace period");
            }
            let _ = write!(s, ", undoing {}", removal_words(r, zone));
            s
        }
    }
}

pub fn reload_line(e: &Event, r: &GuardReload, zone: Zone) -> String {
    if let Some(err) = &r.error {
        return format!(
            "{} guard     reload FAILED: {}; the expectations are unchanged",
            zone.stamp(&e.ts),
            escape_str(err)
        );
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter()
                .map(|t| escape_str(t))
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    format!(
        "{} guard     reloaded: {} expectations; added: {}; removed: {}",
        zone.stamp(&e.ts),
        r.expectations,
        list(&r.added),
        list(&r.removed)
    )
}
