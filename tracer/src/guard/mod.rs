//! `tracer guard`: expectations about routing state, checked against the
//! state at start and then against every change of the session. An
//! expectation that breaks and is not restored within the grace period is a
//! `guard_violation` (with the change that broke it); when it holds again, a
//! `guard_restored`. Nothing runs unless `--on-violation` was given; nothing
//! is put back unless `--repair` was (`repair`). SIGHUP reads the
//! expectations again (`reload`).
pub mod action;
mod devices;
pub mod expect;
pub mod reload;
pub mod repair;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crate::event::{Body, Event, GuardReport, Kind, Name, Netns, Route, Rule, Source, format_ts};
use action::Runner;
use expect::Expectation;
use repair::{Due, RepairState, Repairer};

enum State {
    Holding,
    /// Broken since `at`; `reported` once the violation was written.
    Broken {
        since: String,
        at: Instant,
        change: Option<Box<Event>>,
        reported: bool,
    },
}

struct Watch {
    text: String,
    expect: Expectation,
    netns: Netns,
    /// Identities of the rules or routes present that meet the expectation
    /// (a set, so a change seen both in the snapshot and as an event counts
    /// once).
    present: HashSet<Present>,
    state: State,
    repair: RepairState,
}

impl Watch {
    fn new(text: String, expect: Expectation, netns: Netns) -> Watch {
        Watch {
            text,
            expect,
            netns,
            present: HashSet::new(),
            state: State::Holding,
            repair: RepairState::default(),
        }
    }
}

pub struct Guard {
    watches: Vec<Watch>,
    grace: Duration,
    runner: Option<Runner>,
    /// Until the snapshot is complete, changes are not counted.
    started: bool,
    /// `--expect-current`: the tables whose present routes and rules become
    /// expectations, and the namespaces they are taken in.
    current: Option<(Vec<u32>, Vec<Netns>)>,
    /// `--repair`.
    repairer: Option<Repairer>,
    /// The namespaces the expectations are checked in.
    spaces: Vec<Netns>,
    /// SIGHUP: how to read the expectations again.
    reload: Option<reload::Reload>,
    /// Device names by index, as routes showed them.
    devices: devices::Devices,
}

/// What the guard counts as present for an expectation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Present {
    /// What identifies a route in the kernel: table, destination, metric
    /// (and type, so a throw and a unicast route to the same prefix differ).
    Route {
        table: Option<u32>,
        dst: Option<String>,
        metric: u32,
        rtype: Option<Name>,
    },
    /// A rule has no key but all of itself (without the names and the
    /// protocol, which a restoring process may set differently).
    Rule(Box<Rule>),
}

impl Present {
    fn route(r: &Route) -> Self {
        Present::Route {
            table: r.table,
            dst: r.dst.clone(),
            metric: r.metric.unwrap_or(0),
            rtype: r.rtype.clone(),
        }
    }

    fn rule(r: &Rule) -> Self {
        let mut r = r.clone();
        r.table_name = None;
        r.protocol = None;
        Present::Rule(Box::new(r))
    }
}

impl Guard {
    /// One watch per expectation and namespace.
    pub fn new(
        expectations: Vec<(String, Expectation)>,
        namespaces: &[Netns],
        grace: Duration,
        runner: Option<Runner>,
    ) -> Guard {
        let mut watches = Vec::new();
        for ns in namespaces {
            for (text, expect) in &expectations {
                watches.push(Watch::new(text.clone(), expect.clone(), ns.clone()));
            }
        }
        Guard {
            watches,
            grace,
            runner,
            started: false,
            current: None,
            repairer: None,
            spaces: namespaces.to_vec(),
            reload: None,
            devices: devices::Devices::default(),
        }
    }

    /// `--repair`: put back what broke an expectation past its grace period.
    pub fn with_repair(mut self, r: Repairer) -> Guard {
        self.repairer = Some(r);
        self
    }

    /// SIGHUP: read the expectations again.
    pub fn with_reload(mut self, r: reload::Reload) -> Guard {
        self.reload = Some(r);
        self
    }

    /// `--expect-current`: take the present routes of these tables, and the
    /// rules that look them up, as expectations.
    pub fn expect_current(&mut self, tables: Vec<u32>, namespaces: &[Netns]) {
        self.current = Some((tables, namespaces.to_vec()));
    }

    /// Add expectations taken from the present state (`--expect-current`).
    pub fn adopt(&mut self, netns: &Netns, e: Expectation) {
        let text = e.to_string();
        if self
            .watches
            .iter()
            .any(|w| w.text == text && w.netns.inode == netns.inode)
        {
            return;
        }
        self.watches.push(Watch::new(text, e, netns.clone()));
    }

    /// The snapshot is complete: what is missing now is broken from now,
    /// reported at once (there is nothing to wait for).
    pub fn start(&mut self) -> Vec<Event> {
        self.started = true;
        let now = Instant::now();
        let ts = format_ts(chrono::Utc::now());
        let mut out = Vec::new();
        for i in 0..self.watches.len() {
            if self.watches[i].present.is_empty() {
                self.watches[i].state = State::Broken {
                    since: ts.clone(),
                    at: now,
                    change: None,
                    reported: false,
                };
                out.extend(self.report(i, now));
            }
        }
        out
    }

    /// See one event: snapshot entries count what is present; changes that
    /// took effect move the count and the state.
    pub fn event(&mut self, e: &Event) -> Vec<Event> {
        // A replacement is the old route's removal, then the new one's
        // addition.
        let mut before = Vec::new();
        if let Body::Change(c) = &e.body
            && let Some(old) = &c.old
        {
            let mut gone = e.clone();
            gone.kind = Kind::RouteDel;
            if let Body::Change(g) = &mut gone.body {
                g.route = Some(old.clone());
                g.old = None;
            }
            before = self.event(&gone);
        }
        let mut out = self.event_one(e);
        before.append(&mut out);
        before
    }

    fn event_one(&mut self, e: &Event) -> Vec<Event> {
        let named = self.devices.name(e);
        let e = named.as_ref().unwrap_or(e);
        let (netns, rule, route, add) = match &e.body {
            Body::State(s) if !self.started => (&s.netns, &s.rule, &s.route, true),
            Body::Change(c) if self.started && c.result.as_deref() == Some("ok") => (
                &c.netns,
                &c.rule,
                &c.route,
                matches!(e.kind, Kind::RuleAdd | Kind::RouteAdd | Kind::RouteReplace),
            ),
            _ => return Vec::new(),
        };
        if let (Body::State(st), Some((tables, spaces))) = (&e.body, &self.current)
            && spaces.iter().any(|n| n.inode == st.netns.inode)
        {
            let adopt = match (&st.route, &st.rule) {
                (Some(r), _) if r.table.is_some_and(|t| tables.contains(&t)) => {
                    Expectation::of_route(r)
                }
                (_, Some(r))
                    if r.action.as_deref() == Some("table")
                        && r.table.is_some_and(|t| tables.contains(&t)) =>
                {
                    Expectation::of_rule(r)
                }
                _ => None,
            };
            if let Some(x) = adopt {
                let ns = st.netns.clone();
                self.adopt(&ns, x);
            }
        }
        let now = Instant::now();
        let mut out = Vec::new();
        for w in self
            .watches
            .iter_mut()
            .filter(|w| netns.inode.is_some() && w.netns.inode == netns.inode)
        {
            let hit = rule.as_ref().is_some_and(|r| w.expect.matches_rule(r))
                || route.as_ref().is_some_and(|r| w.expect.matches_route(r));
            if !hit {
                continue;
            }
            let id = match (rule, route) {
                (Some(r), _) => Present::rule(r),
                (_, Some(r)) => Present::route(r),
                _ => continue,
            };
            if add {
                w.present.insert(id);
            } else {
                w.present.remove(&id);
            }
            if !self.started {
                continue;
            }
            match (&w.state, w.present.len()) {
                (State::Holding, 0) => {
                    w.repair.rearm();
                    w.state = State::Broken {
                        since: e.ts.clone(),
                        at: now,
                        change: Some(Box::new(e.clone())),
                        reported: false,
                    };
                }
                (
                    State::Broken {
                        since, reported, ..
                    },
                    n,
                ) if n > 0 => {
                    if *reported {
                        out.push(guard_event(
                            Kind::GuardRestored,
                            w,
                            since.clone(),
                            self.grace,
                            Some(Box::new(e.clone())),
                        ));
                    }
                    w.state = State::Holding;
                    w.repair.rearm();
                }
                _ => {}
            }
        }
        out
    }

    /// Violations whose grace period ran out, their repairs, finished
    /// commands, and a reload asked for.
    pub fn tick(&mut self) -> Vec<Event> {
        let now = Instant::now();
        let mut out = Vec::new();
        for i in 0..self.watches.len() {
            out.extend(self.report(i, now));
        }
        out.extend(self.repairs(now));
        if self.reload.as_ref().is_some_and(reload::Reload::asked) {
            out.extend(self.reload(now));
        }
        if let Some(r) = self.runner.as_mut() {
            for a in r.finished() {
                out.push(Event {
                    ts: format_ts(chrono::Utc::now()),
                    kind: Kind::GuardAction,
                    source: Source::Tracer,
                    body: Body::GuardAction(a),
                });
            }
        }
        out
    }

    /// Repairs due now: routes first, then rules (a rule put back before
    /// the routes of its table would send traffic to an incomplete table).
    fn repairs(&mut self, now: Instant) -> Vec<Event> {
        let Some(r) = self.repairer.as_mut() else {
            return Vec::new();
        };
        let grace = self.grace;
        let mut due: Vec<&mut Watch> = self
            .watches
            .iter_mut()
            .filter(|w| {
                matches!(
                    w.state,
                    State::Broken {
                        reported: true,
                        change: Some(_),
                        ..
                    }
                ) && w.repair.due(now)
            })
            .collect();
        due.sort_by_key(|w| matches!(w.expect, Expectation::Rule(_)));
        let mut out = Vec::new();
        for w in due {
            let State::Broken {
                at,
                change: Some(removal),
                ..
            } = &w.state
            else {
                continue;
            };
            let d = Due {
                text: &w.text,
                netns: &w.netns,
                removal,
                grace_end: *at + grace,
                state: &mut w.repair,
            };
            out.extend(r.repair(d, now));
        }
        out
    }

    /// When the guard next has something to do: a grace period that ends,
    /// or a repair that waits for its device.
    pub fn due(&self) -> Option<Instant> {
        self.watches
            .iter()
            .filter_map(|w| match &w.state {
                State::Broken {
                    at,
                    change: Some(_),
                    reported: false,
                    ..
                } => Some(*at + self.grace),
                State::Broken { reported: true, .. } if self.repairer.is_some() => {
                    w.repair.next_check()
                }
                _ => None,
            })
            .min()
    }

    /// The violation of watch `i`, if it is due and not yet reported.
    fn report(&mut self, i: usize, now: Instant) -> Option<Event> {
        let w = &mut self.watches[i];
        let State::Broken {
            since,
            at,
            change,
            reported,
        } = &mut w.state
        else {
            return None;
        };
        // Missing at start (no change): at once; else after the grace period.
        if *reported || (change.is_some() && now.duration_since(*at) < self.grace) {
            return None;
        }
        *reported = true;
        let (since, change) = (since.clone(), change.clone());
        let e = guard_event(Kind::GuardViolation, w, since, self.grace, change);
        if let Some(r) = self.runner.as_mut() {
            r.violation(
                &w.text,
                crate::event::Host::this().json(&e).unwrap_or_default(),
            );
        }
        Some(e)
    }

    /// Expectations and whether each holds now.
    #[cfg(test)]
    pub fn status(&self) -> std::collections::BTreeMap<(String, Option<u32>), bool> {
        self.watches
            .iter()
            .map(|w| {
                (
                    (w.text.clone(), w.netns.inode),
                    matches!(w.state, State::Holding),
                )
            })
            .collect()
    }
}

fn guard_event(
    kind: Kind,
    w: &Watch,
    since: String,
    grace: Duration,
    change: Option<Box<Event>>,
) -> Event {
    Event {
        ts: format_ts(chrono::Utc::now()),
        kind,
        source: Source::Tracer,
        body: Body::Guard(GuardReport {
            expectation: w.text.clone(),
            netns: w.netns.clone(),
            since,
            grace_secs: grace.as_secs_f64(),
            change,
        }),
    }
}

#[cfg(test)]
mod violation_tests;

impl crate::stages::Stage for Guard {
    fn event(&mut self, e: &Event) -> Vec<Event> {
        Guard::event(self, e)
    }
    fn start(&mut self) -> Vec<Event> {
        Guard::start(self)
    }
    fn tick(&mut self) -> Vec<Event> {
        Guard::tick(self)
    }
    fn due(&self) -> Option<Instant> {
        Guard::due(self)
    }
}
