//! Text lines for the events of `record` and `guard`: snapshot entries,
//! journal health, guard violations and the commands they ran.
use std::fmt::Write as _;

use super::describe::{netns_label, route, rule, who};
use crate::escape::escape_str;
use crate::event::{
    Event, GuardAction, GuardReport, JournalHealth, Kind, NamespaceSeen, SnapshotEnd, StateEntry,
};

pub fn state_line(e: &Event, s: &StateEntry) -> String {
    let what = match (&s.route, &s.rule) {
        (Some(r), _) => route(r),
        (_, Some(r)) => rule(r),
        _ => String::new(),
    };
    format!("{} snapshot  {what} netns {}", e.ts, netns_label(&s.netns))
}

pub fn snapshot_end_line(e: &Event, s: &SnapshotEnd) -> String {
    format!(
        "{} snapshot  netns {}: {} rules, {} routes",
        e.ts,
        netns_label(&s.netns),
        s.rules,
        s.routes
    )
}

pub fn namespace_line(e: &Event, n: &NamespaceSeen) -> String {
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
    format!("{} netns     {label}{inode} {what}", e.ts)
}

pub fn journal_line(e: &Event, j: &JournalHealth) -> String {
    match &j.error {
        Some(err) => format!(
            "{} JOURNAL   cannot write {}: {}; events are kept in memory and tracing goes on",
            e.ts,
            escape_str(&j.path),
            escape_str(err)
        ),
        None => format!(
            "{} journal   writing {} again ({} events could not be kept)",
            e.ts,
            escape_str(&j.path),
            j.dropped
        ),
    }
}

pub fn guard_line(e: &Event, g: &GuardReport) -> String {
    let verb = if e.kind.as_str() == "guard_restored" {
        "restored"
    } else {
        "VIOLATED"
    };
    let mut s = format!(
        "{} guard     {verb}: {} (netns {}) since {}",
        e.ts,
        escape_str(&g.expectation),
        netns_label(&g.netns),
        g.since
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

pub fn action_line(e: &Event, a: &GuardAction) -> String {
    let status = match (a.exit_code, &a.error) {
        (_, Some(err)) => escape_str(err),
        (Some(c), None) => format!("exit {c}"),
        (None, None) => "killed".into(),
    };
    let mut s = format!(
        "{} guard     ran {:?} for {}: {status} after {} ms",
        e.ts,
        escape_str(&a.command),
        escape_str(&a.expectation),
        a.duration_ms
    );
    if a.suppressed > 0 {
        let _ = write!(s, " ({} earlier violations rate-limited)", a.suppressed);
    }
    s
}
