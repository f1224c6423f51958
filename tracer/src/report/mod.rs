//! `tracer report`: journals read back as a timeline of episodes (who
//! removed or added what, in one burst), what was restored after each
//! removal and by whom, the loops seen, and what is still missing at the
//! end of the window.
pub mod chart;
pub mod episodes;
pub mod fate;
mod hosts;
pub mod html;
pub mod identity;
mod links;
pub mod loops;
pub mod markdown;
pub mod model;
mod nexthops;
pub mod postmortem;
mod scan;
pub mod select;
mod svg;
pub mod text;
mod text_items;
mod words;

use std::{io::Write as _, path::PathBuf};

use anyhow::{Result, bail};
use chrono::Duration;

use self::{
    fate::{History, Mark},
    identity::{Actor, Key, NsKey, Object},
    model::{Added, Episode, Failed, Item, Missing, Removed, Replaced, Report},
    scan::Scan,
    select::Select,
    words::Zone,
};
use crate::{
    cli::{ReportArgs, ReportFormat},
    event::{Change, Netns, Op},
    journal::read::{self, Data, Entry, Problem, Reader},
    netlink::names::TableNames,
    when::Window,
};

pub fn run(args: ReportArgs) -> Result<()> {
    if !(args.gap.is_finite() && args.gap >= 0.0) {
        bail!("--gap {}: a number of seconds, 0 or more", args.gap);
    }
    let window = Window::parse(
        args.since.as_deref(),
        args.until.as_deref(),
        &chrono::Local::now(),
    )?;
    let select = Select::from_args(&args, &TableNames::load())?;
    let groups = read::input_groups(&args.journal, &args.files)?;
    let files = groups.concat();
    readable(&files)?;
    // Each journal (or file) read on its own, then merged by time.
    let mut journals = Vec::new();
    let mut problems = Vec::new();
    for g in groups {
        let (e, p) = Reader::new(g).read_all();
        journals.push(e);
        problems.extend(p);
    }
    let entries = hosts::merge(journals);
    // Nothing but files that are not journals: say so, not an empty report.
    if entries.is_empty()
        && let Some(p) = problems.iter().find(|p| p.not_a_journal)
    {
        bail!("{p}");
    }
    let known = hosts::names(&entries);
    let mut entries = hosts::only(entries, &args.host);
    if !args.host.is_empty() && entries.is_empty() {
        bail!(
            "no event of host {} in {} file(s); the hosts there: {}",
            args.host.join(", "),
            files.len(),
            if known.is_empty() {
                "none named".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    hosts::qualify(&mut entries);
    select.check_tables(&entries)?;
    let gap = Duration::microseconds((args.gap * 1e6) as i64);
    let report = build(entries, problems, &files, window, &select, gap);
    let zone = Zone::from_utc_flag(args.utc);
    let format = if args.json {
        ReportFormat::Json
    } else {
        args.format
    };
    let out = match format {
        ReportFormat::Json => serde_json::to_string(&report)? + "\n",
        ReportFormat::Text => text::render(&report, zone),
        ReportFormat::Markdown => markdown::render(&report, zone),
        ReportFormat::Html => html::render(&report, zone),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Fails on the first file that cannot be opened, whether it was given
/// alone or found in a journal directory: a report that left a file out
/// would call restored routes missing and miss loops, so a forensic user
/// is told at once (and can run as root, or copy the file) rather than
/// given a partial answer. A file that vanished since it was listed
/// (rotation) is left to the reader, which reports it as a problem.
fn readable(files: &[PathBuf]) -> Result<()> {
    for f in files.iter().filter(|f| f.as_os_str() != "-") {
        match std::fs::File::open(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("cannot read {}: {e}", f.display())
            }
            _ => {}
        }
    }
    Ok(())
}

/// The report of journals already read (each one's events in its own
/// order), of every host, in no time window, with `sel`'s filters and the
/// default gap: what `run` builds from the same journals without
/// `--host`, `--since` or `--until`. The journal readers' fuzz target
/// comes in here.
pub fn of_journals(
    journals: Vec<Vec<Entry>>,
    problems: Vec<Problem>,
    files: &[PathBuf],
    sel: &Select,
) -> Report {
    let mut entries = hosts::merge(journals);
    hosts::qualify(&mut entries);
    build(
        entries,
        problems,
        files,
        Window::default(),
        sel,
        Duration::seconds(2),
    )
}

fn applied(c: &Change) -> bool {
    c.applied()
}

fn mark(op: Op, c: &Change) -> Mark {
    match op {
        Op::Add => Mark::Add,
        Op::Del if c.gone_with_interface() => Mark::Gone,
        Op::Del => Mark::Del,
    }
}

fn note_ns(seen: &mut Vec<Netns>, n: &Netns) {
    if !seen.iter().any(|s| NsKey::of(s) == NsKey::of(n)) {
        seen.push(n.clone());
    }
}

/// The report of `entries` in `window`, with the filters of `sel`.
pub fn build(
    mut entries: Vec<Entry>,
    problems: Vec<Problem>,
    files: &[PathBuf],
    window: Window,
    sel: &Select,
    gap: Duration,
) -> Report {
    entries.retain(|e| window.contains(e.ts));
    entries.sort_by_key(|e| e.ts);
    links::name_devices(&mut entries);
    let mut scan = Scan::default();
    for (seq, e) in entries.iter().enumerate() {
        scan.entry(seq, e, sel);
    }
    let Scan {
        history,
        namespaces,
        mut timeline,
        not_shown,
        changes,
        loops,
        rows,
        ..
    } = scan;

    for d in episodes::group(changes, gap) {
        if let Some(ep) = episode(&entries, &d.seqs, &history, sel) {
            timeline.push(Item::Episode(ep));
        }
    }
    timeline.extend(
        loops
            .finish(sel, &history)
            .into_iter()
            .map(|l| Item::Loop(Box::new(l))),
    );
    timeline.sort_by_key(Item::ts);
    let missing = missing(&entries, &history, sel);

    Report {
        inputs: inputs(files),
        since: window.since,
        until: window.until,
        filters: sel.describe(),
        events: entries.len(),
        first: entries.first().map(|e| e.ts),
        last: entries.last().map(|e| e.ts),
        end: window
            .until
            .map(|u| u.min(chrono::Utc::now()))
            .or(entries.last().map(|e| e.ts)),
        namespaces,
        timeline,
        missing,
        not_shown,
        problems,
        rows: rows.finish(),
    }
}

/// The input files as the report names them (`-` is `<stdin>`).
fn inputs(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| match f.to_str() {
            Some("-") => "<stdin>".to_string(),
            _ => f.display().to_string(),
        })
        .collect()
}

/// What is still missing at the end: the removals `history` saw no return
/// of, unless `sel` leaves out the process that made them.
fn missing(entries: &[Entry], history: &History, sel: &Select) -> Vec<Missing> {
    history
        .missing()
        .into_iter()
        .filter_map(|seq| {
            let e = &entries[seq];
            let Data::Change(_, c) = &e.data else {
                return None;
            };
            if !sel.actor(c.process.as_deref()) {
                return None;
            }
            Some(Missing {
                netns: c.netns.clone(),
                object: Object::of(c)?,
                removed_at: e.ts,
                removed_by: Actor::of(c.process.as_deref()),
                cause: c.cause,
                with_nexthop: nexthops::deletion(entries, seq, e.ts, c),
            })
        })
        .collect()
}

/// One episode from its changes, unless `sel` leaves its process out.
fn episode(entries: &[Entry], seqs: &[usize], history: &History, sel: &Select) -> Option<Episode> {
    let mut actor: Option<Actor> = None;
    let mut ep = Episode {
        start: entries[seqs[0]].ts,
        end: entries[seqs[seqs.len() - 1]].ts,
        actor: Actor::default(),
        netns: Vec::new(),
        removed: Vec::new(),
        added: Vec::new(),
        failed: Vec::new(),
    };
    for &seq in seqs {
        let e = &entries[seq];
        let Data::Change(op, c) = &e.data else {
            continue;
        };
        let p = c.process.as_deref();
        match &mut actor {
            None if !sel.actor(p) => return None,
            None => actor = Some(Actor::of(p)),
            Some(a) => a.merge(p),
        }
        note_ns(&mut ep.netns, &c.netns);
        let Some(object) = Object::of(c) else {
            continue;
        };
        let key = Key::new(&c.netns, &object);
        if !applied(c) {
            ep.failed.push(Failed {
                ts: e.ts,
                kind: e.kind.clone(),
                netns: c.netns.clone(),
                object,
                result: c.result.as_deref().unwrap_or_default().to_string(),
            });
            continue;
        }
        match op {
            Op::Del => ep.removed.push(Removed {
                ts: e.ts,
                netns: c.netns.clone(),
                object,
                cause: c.cause,
                with_nexthop: nexthops::deletion(entries, seq, e.ts, c),
                fate: history.fate(&key, seq),
            }),
            Op::Add => ep.added.push(Added {
                ts: e.ts,
                netns: c.netns.clone(),
                object,
                restores: history.restores(&key, seq),
                replaces: c
                    .old
                    .clone()
                    .map(Replaced::Route)
                    .or_else(|| c.old_nexthop.clone().map(Replaced::Nexthop)),
            }),
        }
    }
    ep.actor = actor?;
    Some(ep)
}

#[cfg(test)]
mod doc_tests;
#[cfg(test)]
mod lab_tests;
#[cfg(test)]
mod nexthop_tests;
#[cfg(test)]
mod synthetic_tests;
