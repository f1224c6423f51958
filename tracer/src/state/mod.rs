//! `tracer state --at TIME [--diff TIME2]`: a namespace's rules and routes
//! as they were at a past moment, rebuilt from the journal
//! (journal/state.rs) and printed as `ip rule` / `ip route show table all`
//! print them; with `--diff`, what changed between the two moments and who
//! changed each. Reads the journal only: no root, no kernel.
mod diff;
pub(crate) mod ipstyle;

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Local, Utc};

use crate::{
    cli::StateArgs,
    escape::escape_str,
    event::{Family, Route, Rule},
    journal::{
        self,
        read::Reader,
        state::{NsState, Rebuilt, rebuild},
    },
    netlink::names::TableNames,
    zone::Zone,
};

/// How times are shown: in the zone `--utc` chose, to the microsecond.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    zone: Zone,
}

impl Clock {
    pub(crate) fn show(self, t: DateTime<Utc>) -> String {
        match self.zone {
            Zone::Utc => t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
            Zone::Local => t
                .with_timezone(&self.zone.offset(t))
                .format("%Y-%m-%d %H:%M:%S%.6f %:z")
                .to_string(),
        }
    }
}

/// A time argument, read as `--since` reads it; never in the future.
fn moment(flag: &str, spec: &str) -> Result<DateTime<Utc>> {
    let now = Local::now();
    let t = crate::when::parse(spec, &now).map_err(|e| anyhow!("{flag} {spec:?}: {e:#}"))?;
    let now = now.with_timezone(&Utc);
    if t > now {
        bail!(
            "{flag} {spec:?} is in the future (it is now {}): no journal knows that state",
            now.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    Ok(t)
}

fn files(journal: Option<&PathBuf>) -> Result<Vec<PathBuf>> {
    match journal {
        Some(p) if !p.exists() => bail!("--journal {}: no such directory or file", p.display()),
        Some(p) => journal::read::inputs(&[], std::slice::from_ref(p)),
        None => journal::read::journal_files(std::path::Path::new(journal::DEFAULT_DIR)),
    }
}

/// The namespace's state at `at`, or a one-line reason there is none.
fn state_at<'r>(
    r: &'r Rebuilt,
    flag: &str,
    clock: Clock,
    netns: Option<&str>,
) -> Result<&'r NsState> {
    if r.spaces.is_empty() {
        let when =
            r.at.map_or_else(|| flag.to_string(), |t| format!("{flag} {}", clock.show(t)));
        return Err(anyhow!("{}", r.nothing_before(&when, |t| clock.show(t))));
    }
    r.pick(netns).map_err(|e| anyhow!("{e}"))
}

pub fn run(args: StateArgs) -> Result<()> {
    let names = TableNames::load();
    let table = args
        .table
        .as_deref()
        .map(|t| {
            names
                .parse(t)
                .ok_or_else(|| anyhow!("--table {t}: not a table id or a name in rt_tables"))
        })
        .transpose()?;
    let clock = Clock {
        zone: Zone::from_utc_flag(args.utc),
    };
    let files = files(args.journal.as_ref())?;
    let t1 = moment("--at", &args.at)?;
    let t2 = args
        .diff
        .as_deref()
        .map(|d| moment("--diff", d))
        .transpose()?;
    if let Some(t2) = t2.filter(|t2| *t2 < t1) {
        bail!(
            "--diff {} is before --at {}: give the earlier moment to --at",
            clock.show(t2),
            clock.show(t1)
        );
    }
    let r1 = rebuild(Reader::new(files.clone()), Some(t1), None);
    let s1 = state_at(&r1, "--at", clock, args.netns.as_deref())?;
    let out = match t2 {
        None => show_state(s1, &r1, clock, table, &names),
        Some(t2) => {
            let r2 = rebuild(Reader::new(files), Some(t2), Some(t1));
            let name = s1
                .netns
                .name
                .clone()
                .or(s1.netns.inode.map(|i| i.to_string()));
            let s2 = state_at(&r2, "--diff", clock, name.as_deref())?;
            diff::show((s1, t1), s2, &r2, clock, table, &names)
        }
    };
    print!("{out}");
    Ok(())
}

/// What may be missing from a state: no snapshot, lost records, the
/// journal ending before the moment, unreadable lines.
pub(crate) fn caveats(s: &NsState, r: &Rebuilt, clock: Clock) -> Vec<String> {
    let mut out = Vec::new();
    if s.snapshot.is_none() {
        out.push(format!(
            "no snapshot of this namespace before that time: only the {} changes recorded are known",
            s.changes
        ));
    }
    out.extend(s.caveats.iter().cloned());
    if let (Some(at), Some(last)) = (r.at, r.last_ts)
        && at > last
    {
        out.push(format!(
            "the journal's last event is at {}: if the recorder stopped then, later changes are not known",
            clock.show(last)
        ));
    }
    if let Some(p) = r.problems.first() {
        out.push(format!(
            "{} journal lines could not be read (the first: {p})",
            r.problems.len()
        ));
    }
    out
}

pub(crate) fn header(s: &NsState, r: &Rebuilt, clock: Clock) -> String {
    let mut h = format!(
        "netns {} at {}",
        crate::describe::netns_label(&s.netns),
        r.at.map_or("?".into(), |t| clock.show(t))
    );
    if let Some(snap) = s.snapshot {
        let _ = write!(
            h,
            " (the snapshot of {}, then {} changes)",
            clock.show(snap),
            s.changes
        );
    }
    h
}

/// The rules of `family` (those looking up `table`, with one), in order.
pub(crate) fn rules_of(s: &NsState, family: Family, table: Option<u32>) -> Vec<&Rule> {
    let mut v: Vec<&Rule> = s
        .rules
        .iter()
        .filter(|r| r.family == Some(family))
        .filter(|r| table.is_none_or(|t| r.table == Some(t)))
        .collect();
    v.sort_by_key(|r| r.priority.unwrap_or(0));
    v
}

/// The routes of `family` (of `table`, with one), by table, prefix, metric.
pub(crate) fn routes_of(s: &NsState, family: Family, table: Option<u32>) -> Vec<&Route> {
    let mut v: Vec<&Route> = s
        .routes
        .iter()
        .filter(|r| r.family == Some(family))
        .filter(|r| table.is_none_or(|t| r.table == Some(t)))
        .collect();
    v.sort_by_key(|r| {
        let net = r.dst.as_deref().and_then(crate::prefix::parse);
        (
            r.table.unwrap_or(0),
            net.map(|n| n.network()),
            net.map(|n| n.prefix_len()),
            r.metric.unwrap_or(0),
            r.dev.clone(),
        )
    });
    v
}

fn show_state(
    s: &NsState,
    r: &Rebuilt,
    clock: Clock,
    table: Option<u32>,
    names: &TableNames,
) -> String {
    let mut out = format!("State of {}:\n", header(s, r, clock));
    for c in caveats(s, r, clock) {
        let _ = writeln!(out, "Not known: {}", escape_str(&c));
    }
    for (family, flag) in [(Family::Inet, "-4"), (Family::Inet6, "-6")] {
        let _ = writeln!(out, "\nip {flag} rule show");
        for rule in rules_of(s, family, table) {
            let _ = writeln!(out, "{}", ipstyle::rule(rule, names));
        }
        match table {
            Some(t) => {
                let _ = writeln!(out, "\nip {flag} route show table {t}");
            }
            None => {
                let _ = writeln!(out, "\nip {flag} route show table all");
            }
        }
        for route in routes_of(s, family, table) {
            let _ = writeln!(out, "{}", ipstyle::route(route, names));
        }
    }
    out
}
