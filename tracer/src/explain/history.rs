//! What the journal says about the routes that cover a destination in one
//! table, and the rules that look that table up: when each appeared or
//! disappeared and who did it.
use std::{collections::BTreeMap, net::IpAddr};

use serde::Serialize;

use crate::{
    describe,
    event::{Change, Netns, Process, Route, Rule},
    journal::read::{Data, Entry, Problem},
    prefix::{self, covers},
};

/// One moment in an object's history.
#[derive(Clone, Debug, Serialize)]
pub struct Moment {
    pub ts: String,
    /// "present" (in a recording's starting snapshot), "added", "removed",
    /// "replaced" (by a route of another type or gateway, `route_replace`).
    pub what: &'static str,
    pub process: Option<Process>,
    /// Why the kernel removed it without a request (`link_down`, ...).
    pub cause: Option<String>,
    /// With `cause` `nexthop_del` or `nexthop_replace`: the nexthop
    /// object whose deletion or replacement did it (the change's process
    /// and time are the deletion's).
    pub cause_nhid: Option<u32>,
}

/// A route covering the destination, and what happened to it.
#[derive(Clone, Debug, Serialize)]
pub struct RouteHistory {
    /// `ip route` style: "throw 192.168.1.0/24".
    pub route: String,
    pub dst: String,
    pub prefix_len: u8,
    pub moments: Vec<Moment>,
    /// Whether the kernel has it now.
    pub present_now: bool,
}

/// A rule looking up the table (or with the deciding priority).
#[derive(Clone, Debug, Serialize)]
pub struct RuleHistory {
    pub priority: u32,
    pub rule: String,
    pub moments: Vec<Moment>,
    pub present_now: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    pub routes: Vec<RouteHistory>,
    pub rules: Vec<RuleHistory>,
    /// Lines of the journal that could not be read (file:line: why).
    pub problems: Vec<String>,
    /// Events read.
    pub events: u64,
}

/// What to look for.
pub struct Subject<'a> {
    pub netns: &'a Netns,
    pub table: u32,
    pub dst: IpAddr,
    /// The deciding rule's priority, when there is one.
    pub priority: Option<u32>,
    /// The kernel's routes and rules now, to tell what is present.
    pub routes_now: &'a [Route],
    pub rules_now: &'a [Rule],
}

use crate::journal::state::same_netns;

fn route_key(r: &Route) -> String {
    format!("{} {}", describe::route_short(r), r.metric.unwrap_or(0))
}

fn rule_key(r: &Rule) -> String {
    // The kernel leaves priority 0 out of its messages.
    crate::describe::rule(&Rule {
        table_name: None,
        protocol: None,
        priority: Some(r.priority.unwrap_or(0)),
        ..r.clone()
    })
}

impl Subject<'_> {
    fn route_matches(&self, r: &Route) -> bool {
        r.table == Some(self.table) && r.dst.as_deref().is_some_and(|d| covers(d, self.dst))
    }

    fn rule_matches(&self, r: &Rule) -> bool {
        let family = if self.dst.is_ipv6() {
            crate::event::Family::Inet6
        } else {
            crate::event::Family::Inet
        };
        r.family.is_none_or(|f| f == family)
            && ((r.action.as_deref() == Some("table") && r.table == Some(self.table))
                || (self.priority.is_some() && r.priority == self.priority))
    }
}

/// Objects found, by key: the object and its moments.
type Found<T> = BTreeMap<String, (T, Vec<Moment>)>;

/// The routes and rules of the subject the journal mentions.
#[derive(Default)]
struct Gathered {
    routes: Found<Route>,
    rules: Found<Rule>,
}

/// What one journal entry says happened to a rule or a route, and where.
struct Sighting<'e> {
    netns: &'e Netns,
    rule: Option<&'e Rule>,
    route: Option<&'e Route>,
    moment: Moment,
}

/// Read the journal and gather the history of `s`.
pub fn gather(reader: impl IntoIterator<Item = Result<Entry, Problem>>, s: &Subject) -> History {
    let mut h = History::default();
    let mut found = Gathered::default();
    for item in reader {
        let e: Entry = match item {
            Ok(e) => e,
            Err(p) => {
                let p: Problem = p;
                h.problems.push(p.to_string());
                continue;
            }
        };
        h.events += 1;
        found.entry(&e, s);
    }
    found.add_present_now(s);
    let Gathered { routes, rules } = found;
    h.routes = route_histories(routes, s);
    h.rules = rule_histories(rules, s);
    h
}

impl Gathered {
    /// Take in one entry, if it is about the subject.
    fn entry(&mut self, e: &Entry, s: &Subject) {
        let Some(seen) = self.sighting(e, s) else {
            return;
        };
        if !same_netns(seen.netns, s.netns) {
            return;
        }
        if let Some(r) = seen.route.filter(|r| s.route_matches(r)) {
            let entry = self
                .routes
                .entry(route_key(r))
                .or_insert_with(|| (r.clone(), Vec::new()));
            push(&mut entry.1, seen.moment);
        } else if let Some(r) = seen.rule.filter(|r| s.rule_matches(r)) {
            let entry = self
                .rules
                .entry(rule_key(r))
                .or_insert_with(|| (r.clone(), Vec::new()));
            push(&mut entry.1, seen.moment);
        }
    }

    /// What `e` says happened: a snapshot's "present", or a successful
    /// change's "added" or "removed". A replacement of one of the
    /// subject's routes also records the old route's "replaced" here.
    fn sighting<'e>(&mut self, e: &'e Entry, s: &Subject) -> Option<Sighting<'e>> {
        let ts = crate::event::format_ts(e.ts);
        let seen = match &e.data {
            Data::Snapshot(st) => Sighting {
                netns: &st.netns,
                rule: st.rule.as_ref(),
                route: st.route.as_ref(),
                moment: Moment {
                    ts,
                    what: "present",
                    process: None,
                    cause: None,
                    cause_nhid: None,
                },
            },
            Data::Change(_, c)
                if c.result.as_deref() == Some("ok")
                    && let Some(old) = c
                        .old
                        .as_ref()
                        .filter(|o| same_netns(&c.netns, s.netns) && s.route_matches(o)) =>
            {
                self.replaced(c, old, &ts);
                Sighting {
                    netns: &c.netns,
                    rule: c.rule.as_ref(),
                    route: c.route.as_ref(),
                    moment: Moment {
                        ts,
                        what: "added",
                        process: c.process.as_deref().cloned(),
                        cause: c.cause.map(|x| x.as_str().to_string()),
                        cause_nhid: c.cause_nhid,
                    },
                }
            }
            Data::Change(op, c) if c.result.as_deref() == Some("ok") => Sighting {
                netns: &c.netns,
                rule: c.rule.as_ref(),
                route: c.route.as_ref(),
                moment: Moment {
                    ts,
                    what: match op {
                        crate::event::Op::Add => "added",
                        crate::event::Op::Del => "removed",
                    },
                    process: c.process.as_deref().cloned(),
                    cause: c.cause.map(|x| x.as_str().to_string()),
                    cause_nhid: c.cause_nhid,
                },
            },
            _ => return None,
        };
        Some(seen)
    }

    /// The route a replacement (`c`) took the place of, unless the new
    /// route is the same one.
    fn replaced(&mut self, c: &Change, old: &Route, ts: &str) {
        let key = route_key(old);
        if c.route.as_ref().is_none_or(|r| route_key(r) != key) {
            let entry = self
                .routes
                .entry(key)
                .or_insert_with(|| (old.clone(), Vec::new()));
            push(
                &mut entry.1,
                Moment {
                    ts: ts.to_string(),
                    what: "replaced",
                    process: c.process.as_deref().cloned(),
                    cause: None,
                    cause_nhid: None,
                },
            );
        }
    }

    /// What the kernel has now but the journal never mentioned.
    fn add_present_now(&mut self, s: &Subject) {
        for r in s.routes_now.iter().filter(|r| s.route_matches(r)) {
            self.routes
                .entry(route_key(r))
                .or_insert_with(|| (r.clone(), Vec::new()));
        }
        for r in s.rules_now.iter().filter(|r| s.rule_matches(r)) {
            self.rules
                .entry(rule_key(r))
                .or_insert_with(|| (r.clone(), Vec::new()));
        }
    }
}

/// The routes, most specific first: the order the kernel consults
/// them in.
fn route_histories(routes: Found<Route>, s: &Subject) -> Vec<RouteHistory> {
    let now_routes: Vec<String> = s
        .routes_now
        .iter()
        .filter(|r| s.route_matches(r))
        .map(route_key)
        .collect();
    let mut out: Vec<RouteHistory> = routes
        .into_iter()
        .map(|(k, (r, moments))| RouteHistory {
            route: describe::route_short(&r),
            dst: r.dst.clone().unwrap_or_default(),
            prefix_len: r.dst.as_deref().and_then(prefix::len).unwrap_or(0),
            moments,
            present_now: now_routes.contains(&k),
        })
        .collect();
    out.sort_by(|a, b| b.prefix_len.cmp(&a.prefix_len).then(a.route.cmp(&b.route)));
    out
}

/// The rules in priority order.
fn rule_histories(rules: Found<Rule>, s: &Subject) -> Vec<RuleHistory> {
    let now_rules: Vec<String> = s
        .rules_now
        .iter()
        .filter(|r| s.rule_matches(r))
        .map(rule_key)
        .collect();
    let mut out: Vec<RuleHistory> = rules
        .into_iter()
        .map(|(k, (r, moments))| RuleHistory {
            priority: r.priority.unwrap_or(0),
            rule: k.clone(),
            moments,
            present_now: now_rules.contains(&k),
        })
        .collect();
    out.sort_by_key(|r| r.priority);
    out
}

/// Append a moment, folding repeated snapshots (one per recording) of an
/// object whose state did not change into the first.
fn push(moments: &mut Vec<Moment>, m: Moment) {
    if m.what == "present" && moments.last().is_some_and(|l| l.what != "removed") {
        return;
    }
    moments.push(m);
}

impl RouteHistory {
    /// The removal that took it away, when it is missing now.
    pub fn removal(&self) -> Option<&Moment> {
        if self.present_now {
            return None;
        }
        self.moments.iter().rev().find(|m| m.what == "removed")
    }
}
