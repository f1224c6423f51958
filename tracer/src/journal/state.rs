//! The rules and routes of each recorded namespace at a past moment, rebuilt
//! from a journal: the latest snapshot before the moment, then every
//! change after it up to the moment. Also what could not be known on the
//! way (no snapshot, records lost, lines unreadable, changes whose outcome
//! is unknown), and the changes in a window (for `state --diff`).
use chrono::{DateTime, Utc};

use super::read::{Data, Entry, Problem};
use crate::event::{Cause, Change, Netns, Op, Process, Route, Rule};

/// One namespace's rules (in the kernel's list order: priority, then the
/// order they were added in) and routes.
#[derive(Clone, Debug, Default)]
pub struct NsState {
    pub netns: Netns,
    pub rules: Vec<Rule>,
    pub routes: Vec<Route>,
    /// When the snapshot this state starts from was taken.
    pub snapshot: Option<DateTime<Utc>>,
    /// A snapshot is being read (no `snapshot_end` yet).
    open: bool,
    /// Changes applied since the snapshot.
    pub changes: u64,
    /// What the state may lack, with when.
    pub caveats: Vec<String>,
    /// Watched by the latest recording (a recording that did not snapshot
    /// it leaves its state as the previous one knew it).
    current: bool,
}

/// A change taken from the journal, for `--diff`.
#[derive(Clone, Debug)]
pub struct Applied {
    pub ts: DateTime<Utc>,
    pub op: Op,
    pub netns: Netns,
    pub rule: Option<Rule>,
    pub route: Option<Route>,
    pub old: Option<Route>,
    pub process: Option<Process>,
    pub cause: Option<Cause>,
    /// With `cause` `nexthop_del` or `nexthop_replace`: the nexthop object.
    pub cause_nhid: Option<u32>,
}

/// Every namespace's state at `at`.
#[derive(Clone, Debug, Default)]
pub struct Rebuilt {
    pub at: Option<DateTime<Utc>>,
    pub spaces: Vec<NsState>,
    /// Successful changes after the window's start, up to `at`.
    pub log: Vec<Applied>,
    /// Unreadable lines up to `at`.
    pub problems: Vec<String>,
    pub events: u64,
    pub first_ts: Option<DateTime<Utc>>,
    /// The journal's first snapshot, even after `at`.
    pub first_snapshot: Option<DateTime<Utc>>,
    /// The last event read up to `at`, and the journal's last event.
    pub last_before: Option<DateTime<Utc>>,
    pub last_ts: Option<DateTime<Utc>>,
}

/// Whether two namespaces are the same: names survive reboots, inodes do not.
pub fn same_netns(a: &Netns, b: &Netns) -> bool {
    match (&a.name, &b.name) {
        (Some(x), Some(y)) => x == y,
        _ => a.inode.is_some() && a.inode == b.inode,
    }
}

/// A rule as the kernel tells two apart (not by names it does not keep).
pub fn rule_key(r: &Rule) -> Rule {
    Rule {
        table_name: None,
        protocol: None,
        priority: Some(r.priority.unwrap_or(0)),
        ..r.clone()
    }
}

/// A route's identity in its table: family, table, prefix, metric.
pub fn route_key(r: &Route) -> (Option<crate::event::Family>, Option<u32>, String, u32) {
    (
        r.family,
        r.table,
        r.dst.clone().unwrap_or_default(),
        r.metric.unwrap_or(0),
    )
}

/// Read `entries` and rebuild every namespace's state at `at` (None: at
/// the end of the journal); keep the changes after `log_since`.
pub fn rebuild(
    entries: impl IntoIterator<Item = Result<Entry, Problem>>,
    at: Option<DateTime<Utc>>,
    log_since: Option<DateTime<Utc>>,
) -> Rebuilt {
    let mut b = Rebuilt {
        at,
        ..Rebuilt::default()
    };
    for item in entries {
        let e = match item {
            Ok(e) => e,
            Err(p) => {
                if b.last_ts.is_none_or(|l| at.is_none_or(|a| l <= a)) {
                    b.problems.push(p.to_string());
                }
                continue;
            }
        };
        b.last_ts = Some(e.ts);
        b.first_ts.get_or_insert(e.ts);
        if matches!(e.data, Data::Snapshot(_)) {
            b.first_snapshot.get_or_insert(e.ts);
        }
        if at.is_some_and(|a| e.ts > a) {
            continue;
        }
        b.events += 1;
        b.last_before = Some(e.ts);
        b.entry(&e, log_since);
    }
    b
}

impl Rebuilt {
    /// Why nothing is known at `at` when no namespace was seen before it.
    pub fn nothing_before(&self, when: &str, show: impl Fn(DateTime<Utc>) -> String) -> String {
        match (self.first_snapshot, self.first_ts) {
            (Some(first), _) => format!(
                "{when} is before the journal's first snapshot ({}): the state then is not known",
                show(first)
            ),
            (None, Some(first)) => format!(
                "{when} is before the journal's first change ({}), and the journal holds no snapshot: the state then is not known",
                show(first)
            ),
            (None, None) => "the journal holds no event".to_string(),
        }
    }

    fn space(&mut self, netns: &Netns) -> &mut NsState {
        match self.spaces.iter().position(|s| same_netns(&s.netns, netns)) {
            Some(i) => &mut self.spaces[i],
            None => {
                self.spaces.push(NsState {
                    netns: netns.clone(),
                    ..NsState::default()
                });
                self.spaces.last_mut().expect("just pushed")
            }
        }
    }

    fn entry(&mut self, e: &Entry, log_since: Option<DateTime<Utc>>) {
        let when = crate::event::format_ts(e.ts);
        match &e.data {
            Data::Ready(_) => {
                for s in &mut self.spaces {
                    s.current = false;
                }
            }
            Data::Snapshot(st) => {
                let s = self.space(&st.netns);
                if !s.open {
                    *s = NsState {
                        netns: st.netns.clone(),
                        snapshot: Some(e.ts),
                        open: true,
                        current: true,
                        ..NsState::default()
                    };
                }
                s.rules.extend(st.rule.clone());
                s.routes.extend(st.route.clone());
            }
            Data::SnapshotEnd(end) => {
                let s = self.space(&end.netns);
                s.open = false;
                if (s.rules.len() as u64, s.routes.len() as u64) != (end.rules, end.routes) {
                    s.caveats.push(format!(
                        "the snapshot of {when} lists {} rules and {} routes but says {} and {}",
                        s.rules.len(),
                        s.routes.len(),
                        end.rules,
                        end.routes
                    ));
                }
            }
            Data::Change(op, c) => self.change(e.ts, *op, c, log_since),
            Data::Lost(l) => {
                for s in self.spaces.iter_mut().filter(|s| s.current) {
                    s.caveats.push(format!(
                        "{} records lost ({}) at {when}: changes after it may be missing",
                        l.count, l.location
                    ));
                }
            }
            Data::Journal(j) if j.dropped > 0 => {
                for s in self.spaces.iter_mut().filter(|s| s.current) {
                    s.caveats.push(format!(
                        "{} events dropped while the journal could not be written, before {when}",
                        j.dropped
                    ));
                }
            }
            _ => {}
        }
    }

    fn change(&mut self, ts: DateTime<Utc>, op: Op, c: &Change, log_since: Option<DateTime<Utc>>) {
        // Nexthop objects are not part of the state: snapshots do not
        // record them, so a state would know only those changed since.
        // What they did to routes comes as route changes of its own.
        if c.rule.is_none() && c.route.is_none() {
            return;
        }
        let when = crate::event::format_ts(ts);
        let s = self.space(&c.netns);
        match c.result.as_deref() {
            Some("ok") => {}
            None => {
                s.caveats.push(format!(
                    "a change at {when} has no known outcome; it is not applied"
                ));
                return;
            }
            Some(_) => return,
        }
        s.changes += 1;
        let applied = match (op, &c.rule, &c.route) {
            (_, Some(r), _) => s.rule(op, r),
            (Op::Add, None, Some(r)) => s.add_route(r, c.old.as_ref()),
            (Op::Del, None, Some(r)) => s.del_route(r),
            _ => true,
        };
        if !applied && s.snapshot.is_some() {
            s.caveats.push(format!(
                "a removal at {when} found nothing to remove: the state before it was not complete"
            ));
        }
        if log_since.is_none_or(|l| ts > l) {
            self.log.push(Applied {
                ts,
                op,
                netns: c.netns.clone(),
                rule: c.rule.clone(),
                route: c.route.clone(),
                old: c.old.clone(),
                process: c.process.as_deref().cloned(),
                cause: c.cause,
                cause_nhid: c.cause_nhid,
            });
        }
    }

    /// The namespace asked about: `name`, else the journal's only one,
    /// else the recorder's own (unnamed). Err: a one-line reason.
    pub fn pick(&self, name: Option<&str>) -> Result<&NsState, String> {
        let label = |s: &NsState| crate::describe::netns_label(&s.netns);
        let known = || self.spaces.iter().map(label).collect::<Vec<_>>().join(", ");
        if self.spaces.is_empty() {
            return Err("the journal holds no snapshot or change before that time".into());
        }
        match name {
            Some(n) => self
                .spaces
                .iter()
                .find(|s| {
                    s.netns.name.as_deref() == Some(n)
                        || s.netns.inode.is_some_and(|i| i.to_string() == n)
                })
                .ok_or_else(|| format!("netns {n} is not in the journal (it holds: {})", known())),
            None if self.spaces.len() == 1 => Ok(&self.spaces[0]),
            None => self
                .spaces
                .iter()
                .find(|s| s.netns.name.is_none())
                .ok_or_else(|| {
                    format!(
                        "the journal holds several namespaces; give --netns (one of: {})",
                        known()
                    )
                }),
        }
    }
}

impl NsState {
    /// Apply a rule change; false when a removal found no such rule.
    fn rule(&mut self, op: Op, r: &Rule) -> bool {
        let key = rule_key(r);
        match op {
            Op::Add => {
                // After the family's last rule of a priority up to its
                // own: the kernel's list order (the list is per family).
                let prio = key.priority.unwrap_or(0);
                let ours = |x: &Rule| x.family == r.family;
                let at = self
                    .rules
                    .iter()
                    .rposition(|x| ours(x) && x.priority.unwrap_or(0) <= prio)
                    .map(|i| i + 1)
                    .or_else(|| self.rules.iter().position(ours))
                    .unwrap_or(self.rules.len());
                self.rules.insert(at, r.clone());
                true
            }
            Op::Del => match self.rules.iter().position(|x| rule_key(x) == key) {
                Some(i) => {
                    self.rules.remove(i);
                    true
                }
                None => false,
            },
        }
    }

    fn add_route(&mut self, r: &Route, old: Option<&Route>) -> bool {
        if let Some(o) = old {
            self.del_route(o);
        }
        let key = route_key(r);
        if old.is_some() || r.family == Some(crate::event::Family::Inet6) {
            // A replacement, or IPv6 (one route per prefix and metric).
            self.routes.retain(|x| route_key(x) != key);
        }
        if !self.routes.contains(r) {
            self.routes.push(r.clone());
        }
        true
    }

    /// Remove the route `r` names: the same one if there, else the first
    /// with its identity.
    fn del_route(&mut self, r: &Route) -> bool {
        let key = route_key(r);
        let same = |x: &Route| {
            route_key(x) == key
                && x.rtype == r.rtype
                && x.gateway == r.gateway
                && (x.ifindex == r.ifindex || x.dev == r.dev)
        };
        let i = self
            .routes
            .iter()
            .position(same)
            .or_else(|| self.routes.iter().position(|x| route_key(x) == key));
        match i {
            Some(i) => {
                self.routes.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
