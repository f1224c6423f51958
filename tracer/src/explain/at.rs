//! `explain --at TIME`, and `explain` when the live kernel cannot answer:
//! the namespace's rules and routes rebuilt from the journal
//! (journal/state.rs), walked as the kernel would (offline.rs). No root,
//! no namespace, no kernel: a copied journal is enough.
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{
    lookup::{self, AskError, Lookup},
    offline::{self, Question},
};
use crate::journal::{read::Reader, state};

/// Why the journal cannot answer, in one line.
#[derive(Debug, thiserror::Error)]
pub enum PastError {
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Ask(#[from] AskError),
}

fn show(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string()
}

/// The lookup for `q` in netns `netns` at `at` (None: the journal's end).
pub fn lookup_at(
    files: Vec<PathBuf>,
    at: Option<DateTime<Utc>>,
    netns: Option<&str>,
    q: &Question,
) -> Result<Lookup, PastError> {
    let rebuilt = state::rebuild(Reader::new(files), at, None);
    let when = at.map_or_else(|| "the journal's end".to_string(), show);
    if rebuilt.spaces.is_empty() {
        return Err(PastError::Unknown(
            rebuilt.nothing_before(&format!("--at {when}"), show),
        ));
    }
    let ns = rebuilt.pick(netns).map_err(PastError::Unknown)?;
    let mut caveats = Vec::new();
    match ns.snapshot {
        Some(_) => caveats.extend(ns.caveats.iter().cloned()),
        None => caveats.push(format!(
            "no snapshot of this namespace before {when}: only the {} changes recorded are known",
            ns.changes
        )),
    }
    if let (Some(a), Some(last)) = (at, rebuilt.last_ts)
        && a > last
    {
        caveats.push(format!(
            "the journal's last event is at {}: if the recorder stopped then, later changes are not known",
            show(last)
        ));
    }
    if let Some(p) = rebuilt.problems.first() {
        caveats.push(format!(
            "{} journal lines could not be read (the first: {p})",
            rebuilt.problems.len()
        ));
    }
    let dst = q
        .dst
        .ok_or_else(|| PastError::Unknown("no destination".into()))?;
    let query = lookup::source(dst, q.src, q.iif.as_deref(), &ns.routes)?;
    if let Some(i) = q.iif.as_deref()
        && !ns.routes.iter().any(|r| r.dev.as_deref() == Some(i))
        && !ns.rules.iter().any(|r| r.iif.as_deref() == Some(i))
    {
        caveats.push(format!(
            "no route or rule of the state names {i}; the journal does not record interfaces"
        ));
    }
    let walk = offline::walk(
        &ns.rules,
        &ns.routes,
        &Question {
            src: Some(query.src),
            ..q.clone()
        },
    );
    let mut l = Lookup::from_walk(
        ns.netns.clone(),
        lookup::Query {
            mark: q.mark,
            ..query
        },
        walk,
        (None, None),
        (ns.routes.clone(), ns.rules.clone()),
    );
    l.unknown.extend(caveats);
    l.state_from = ns.snapshot.map(crate::event::format_ts);
    Ok(l)
}
