//! `tracer explain DEST`: how the kernel routes DEST now (the rules in
//! order, the table, the route, the device), or how it was routed at a
//! past moment (`--at`, from the journal alone), and from the journal the
//! history of every route in that table covering DEST and of the rules that
//! look the table up: when each appeared or disappeared, and who did it.
mod at;
pub mod history;
pub mod lookup;
#[cfg(test)]
mod nexthop_tests;
pub mod offline;
mod render;
pub mod source;

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Utc};

use crate::{
    cli::ExplainArgs,
    journal::{self, read::Reader},
    netlink::names::TableNames,
    zone::Zone,
};
use history::{History, Subject};
use lookup::{Lookup, NsSocket};
use offline::Question;

/// Everything explain found, for text or JSON.
#[derive(serde::Serialize)]
pub struct Explanation {
    pub lookup: Lookup,
    /// The moment asked about (`--at`), or null for now.
    pub at: Option<String>,
    /// Why the live kernel could not answer, when the journal did instead.
    pub fallback: Option<String>,
    /// The journal read, or null.
    pub journal: Option<String>,
    /// Why there is no history (no journal), or null.
    pub journal_error: Option<String>,
    pub history: Option<History>,
    /// One sentence: the missing route that explains the lookup, if any.
    pub answer: Option<String>,
}

/// The question the arguments ask.
fn question(args: &ExplainArgs) -> Question {
    Question {
        dst: Some(args.dest),
        src: args.from,
        iif: args.iif.clone(),
        oif: args.oif.clone(),
        mark: args.mark.unwrap_or(0),
        tos: args.tos.unwrap_or(0),
        proto: args.ipproto,
        sport: args.sport,
        dport: args.dport,
        uid: args.uid,
    }
}

/// The journal's files: the one named (which must exist), else the
/// default directory's, or why there are none.
fn journal_files(args: &ExplainArgs) -> Result<Result<Vec<PathBuf>, String>> {
    Ok(match &args.journal {
        Some(p) if !p.exists() => {
            bail!("--journal {}: no such directory or file", p.display())
        }
        Some(p) => Ok(journal::read::inputs(&[], std::slice::from_ref(p))?),
        None => journal::read::journal_files(std::path::Path::new(journal::DEFAULT_DIR))
            .map_err(|e| format!("{e:#}")),
    })
}

/// `--at` read as `--since` reads its time; never in the future.
fn moment(spec: &str) -> Result<DateTime<Utc>> {
    let now = chrono::Local::now();
    let t = crate::when::parse(spec, &now).map_err(|e| anyhow!("--at {spec:?}: {e:#}"))?;
    if t > now.with_timezone(&Utc) {
        bail!(
            "--at {spec:?} is in the future (it is now {}): no journal knows that state",
            now.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    Ok(t)
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let names = TableNames::load();
    let q = question(&args);
    let at = args.at.as_deref().map(moment).transpose()?;
    let files = journal_files(&args)?;
    let from_journal = |at: Option<DateTime<Utc>>| match &files {
        Ok(f) => at::lookup_at(f.clone(), at, args.netns.as_deref(), &q).map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let (mut lookup, fallback) = match at {
        Some(t) => (from_journal(Some(t)).map_err(|e| anyhow!("{e}"))?, None),
        None => match NsSocket::open(args.netns.as_deref())
            .and_then(|mut ns| lookup::lookup(&mut ns, &q, &names))
        {
            Ok(l) => (l, None),
            Err(e) if e.journal_may_answer() => match from_journal(None) {
                Ok(l) => (l, Some(live_failure(&e))),
                Err(j) => bail!("{e}; the journal cannot answer either: {j}"),
            },
            Err(e) => return Err(e.into()),
        },
    };
    name_tables(&mut lookup, &names);
    let journal_name = args
        .journal
        .clone()
        .unwrap_or_else(|| journal::DEFAULT_DIR.into())
        .display()
        .to_string();
    let history = match (&files, lookup.table()) {
        (Ok(files), Some(table)) => Some(history::gather(
            Reader::new(files.clone()).filter(|e| match (e, at) {
                (Ok(e), Some(t)) => e.ts <= t,
                _ => true,
            }),
            &Subject {
                netns: &lookup.netns,
                table,
                dst: args.dest,
                priority: lookup.decided().and_then(|s| s.rule.priority),
                routes_now: &lookup.routes_now,
                rules_now: &lookup.rules_now,
            },
        )),
        _ => None,
    };
    let at_s = at.map(crate::event::format_ts);
    // The journal's latest state is as of its end, not now.
    let answer_at = at_s
        .clone()
        .or_else(|| fallback.as_ref().map(|_| "the journal's end".to_string()));
    // JSON's times are UTC; text's in the zone asked for.
    let zone = match args.json {
        true => Zone::Utc,
        false => Zone::from_utc_flag(args.utc),
    };
    let answer = history
        .as_ref()
        .and_then(|h| render::answer(&lookup, h, &names, answer_at.as_deref(), zone));
    let e = Explanation {
        journal: history.as_ref().map(|_| journal_name),
        journal_error: files.err(),
        history,
        answer,
        at: at_s,
        fallback,
        lookup,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&e).map_err(|err| anyhow!("serializing: {err}"))?
        );
    } else {
        print!("{}", render::text(&e, &names, zone));
    }
    Ok(())
}

/// Why the live kernel could not answer, in words for the reader.
fn live_failure(e: &lookup::AskError) -> String {
    let denied = matches!(e, lookup::AskError::Kernel(_))
        || e.to_string().contains("Operation not permitted");
    if denied && !nix::unistd::geteuid().is_root() {
        format!("{e}; not running as root")
    } else {
        e.to_string()
    }
}

/// Table names from this machine for what the journal left unnamed.
fn name_tables(l: &mut Lookup, names: &TableNames) {
    for s in &mut l.rules {
        if s.rule.table_name.is_none() {
            s.rule.table_name = s.rule.table.and_then(|t| names.name(t));
        }
    }
    for r in l.route.iter_mut().chain(l.walk_route.iter_mut()) {
        if r.table_name.is_none() {
            r.table_name = r.table.and_then(|t| names.name(t));
        }
    }
}
