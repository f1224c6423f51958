//! `tracer explain DEST`: how the kernel routes DEST now (the rules in
//! order, the table, the route, the device), and from the journal the
//! history of every route in that table covering DEST and of the rules that
//! look the table up: when each appeared or disappeared, and who did it.
pub mod history;
pub mod lookup;
mod render;

use anyhow::{Result, anyhow};

use crate::{
    cli::ExplainArgs,
    journal::{self, read::Reader},
    netlink::names::TableNames,
};
use history::{History, Subject};
use lookup::{Lookup, NsSocket};

/// Everything explain found, for text or JSON.
#[derive(serde::Serialize)]
pub struct Explanation {
    pub lookup: Lookup,
    /// The journal read, or null.
    pub journal: Option<String>,
    /// Why there is no history (no journal), or null.
    pub journal_error: Option<String>,
    pub history: Option<History>,
    /// One sentence: the missing route that explains the lookup, if any.
    pub answer: Option<String>,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let names = TableNames::load();
    let mut ns = NsSocket::open(args.netns.as_deref())?;
    let lookup = lookup::lookup(
        &mut ns,
        args.dest,
        args.from,
        args.iif.as_deref(),
        args.mark.unwrap_or(0),
        &names,
    )?;
    // An explicitly named journal (a directory, or a file of `watch --json`
    // lines) must exist; the default one may not.
    let files = match &args.journal {
        Some(p) if !p.exists() => {
            anyhow::bail!("--journal {}: no such directory or file", p.display())
        }
        Some(p) => Some(journal::read::inputs(None, std::slice::from_ref(p))?),
        None => None,
    };
    let (files, journal_error) = match files {
        Some(f) => (Some(f), None),
        None => match journal::read::journal_files(std::path::Path::new(journal::DEFAULT_DIR)) {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        },
    };
    let journal_name = args
        .journal
        .clone()
        .unwrap_or_else(|| journal::DEFAULT_DIR.into())
        .display()
        .to_string();
    let table = lookup.route.as_ref().and_then(|r| r.table);
    let history = match (files, table) {
        (Some(files), Some(table)) => Some(history::gather(
            Reader::new(files),
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
    let answer = history
        .as_ref()
        .and_then(|h| render::answer(&lookup, h, &names));
    let e = Explanation {
        journal: history.as_ref().map(|_| journal_name),
        journal_error,
        history,
        answer,
        lookup,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&e).map_err(|err| anyhow!("serializing: {err}"))?
        );
    } else {
        print!("{}", render::text(&e, &names));
    }
    Ok(())
}
