//! SIGHUP: the expectations read again (`--expect` and `--expect-file`),
//! `--expect-current` learnt again from the state now, and the difference
//! reported as `guard_reloaded`. Expectations that stay keep their state;
//! new ones are checked against the state now (missing: a violation at
//! once, as at start).
use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::Result;

use super::{Guard, Present, State, Watch, expect::Expectation};
use crate::{
    event::{Body, Event, GuardReload, Kind, Netns, Route, Rule, Source, format_ts},
    netlink::{
        decode::NlObj,
        socket::{DumpKind, dump, dump_socket},
    },
};

/// The expectations of the flags and the file, read again.
pub type ReadExpectations = Box<dyn FnMut() -> Result<Vec<(String, Expectation)>> + Send>;

/// What a reload needs: whether one was asked for (the SIGHUP handler sets
/// it), and how to read the expectations.
pub struct Reload {
    asked: Arc<AtomicBool>,
    read: ReadExpectations,
}

impl Reload {
    pub fn new(asked: Arc<AtomicBool>, read: ReadExpectations) -> Reload {
        Reload { asked, read }
    }

    /// Whether a reload was asked for since the last call.
    pub fn asked(&self) -> bool {
        self.asked.swap(false, Ordering::Relaxed)
    }
}

/// The routes and rules of a namespace now, devices named.
fn state_now(ns: &Netns) -> Result<(Vec<Route>, Vec<Rule>)> {
    let file = ns
        .name
        .as_deref()
        .map(crate::enrich::netns_open::open)
        .transpose()?;
    let s = dump_socket(file.as_ref())?;
    let mut names = HashMap::new();
    for i in dump(&s, DumpKind::Links, 1)? {
        if let NlObj::Link(l) = i.obj
            && let Some(n) = l.name
        {
            names.insert(l.ifindex, n);
        }
    }
    let (mut routes, mut rules) = (Vec::new(), Vec::new());
    for i in dump(&s, DumpKind::Routes, 2)?
        .into_iter()
        .chain(dump(&s, DumpKind::Rules, 3)?)
    {
        match i.obj {
            NlObj::Route { mut route, .. } => {
                route.name_devs(|i| names.get(&i).cloned());
                routes.push(route);
            }
            NlObj::Rule { rule, .. } => rules.push(*rule),
            _ => {}
        }
    }
    Ok((routes, rules))
}

impl Guard {
    /// Read the expectations again; the `guard_reloaded` event, and the
    /// violations of new expectations that do not hold.
    pub(super) fn reload(&mut self, now: Instant) -> Vec<Event> {
        let Some(r) = self.reload.as_mut() else {
            return Vec::new();
        };
        let listed = match (r.read)() {
            Ok(l) => l,
            Err(e) => return vec![self.reloaded(Vec::new(), Vec::new(), Some(format!("{e:#}")))],
        };
        let mut states = Vec::new();
        for ns in &self.spaces {
            match state_now(ns) {
                Ok(s) => states.push((ns.clone(), s)),
                Err(e) => {
                    let e = format!("reading the state of namespace {ns:?}: {e:#}");
                    return vec![self.reloaded(Vec::new(), Vec::new(), Some(e))];
                }
            }
        }
        let mut wanted: Vec<(String, Expectation, Netns)> = Vec::new();
        for (ns, (routes, rules)) in &states {
            wanted.extend(
                listed
                    .iter()
                    .map(|(t, e)| (t.clone(), e.clone(), ns.clone())),
            );
            if let Some((tables, spaces)) = &self.current
                && spaces.iter().any(|n| n.inode == ns.inode)
            {
                let of_routes = routes
                    .iter()
                    .filter(|r| r.table.is_some_and(|t| tables.contains(&t)))
                    .filter_map(Expectation::of_route);
                let of_rules = rules
                    .iter()
                    .filter(|r| {
                        r.action.as_deref() == Some("table")
                            && r.table.is_some_and(|t| tables.contains(&t))
                    })
                    .filter_map(Expectation::of_rule);
                for e in of_routes.chain(of_rules) {
                    wanted.push((e.to_string(), e, ns.clone()));
                }
            }
        }
        let key = |t: &str, n: &Netns| (t.to_string(), n.inode);
        let want_keys: BTreeSet<_> = wanted.iter().map(|(t, _, n)| key(t, n)).collect();
        let mut removed = BTreeSet::new();
        self.watches.retain(|w| {
            let keep = want_keys.contains(&key(&w.text, &w.netns));
            if !keep {
                removed.insert(w.text.clone());
            }
            keep
        });
        let mut added = BTreeSet::new();
        let mut out = Vec::new();
        for (text, expect, ns) in wanted {
            if self
                .watches
                .iter()
                .any(|w| key(&w.text, &w.netns) == key(&text, &ns))
            {
                continue;
            }
            let mut w = Watch::new(text.clone(), expect, ns.clone());
            if let Some((_, (routes, rules))) = states.iter().find(|(n, _)| n.inode == ns.inode) {
                seed(&mut w, routes, rules);
            }
            added.insert(text);
            if w.present.is_empty() {
                w.state = State::Broken {
                    since: format_ts(chrono::Utc::now()),
                    at: now,
                    change: None,
                    reported: false,
                };
            }
            self.watches.push(w);
            let i = self.watches.len() - 1;
            out.extend(self.report(i, now));
        }
        // The same expectation in several namespaces is named once.
        let removed: Vec<String> = removed.difference(&added).cloned().collect();
        let added: Vec<String> = added.into_iter().collect();
        out.insert(0, self.reloaded(added, removed, None));
        out
    }

    fn reloaded(&self, added: Vec<String>, removed: Vec<String>, error: Option<String>) -> Event {
        Event {
            ts: format_ts(chrono::Utc::now()),
            kind: Kind::GuardReloaded,
            source: Source::Tracer,
            body: Body::GuardReload(GuardReload {
                added,
                removed,
                expectations: self.watches.len() as u64,
                error,
            }),
        }
    }
}

/// What of the state now meets a new watch's expectation.
fn seed(w: &mut Watch, routes: &[Route], rules: &[Rule]) {
    for r in routes.iter().filter(|r| w.expect.matches_route(r)) {
        w.present.insert(Present::route(r));
    }
    for r in rules.iter().filter(|r| w.expect.matches_rule(r)) {
        w.present.insert(Present::rule(r));
    }
}
