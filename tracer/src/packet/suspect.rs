//! A loop's suspect: the most recent change seen in the loop's namespace
//! that made the looping route the chosen one, and the advice that names
//! it. Any of these can be it:
//! - the removal of a more specific route of the table that matched (the
//!   incident's `throw 192.168.1.0/24`), not put back since;
//! - the addition or replacement of the looping route itself;
//! - the addition of the rule that sent the packet to that table;
//! - the removal of a rule before it that selected the packet and sent it
//!   elsewhere, not put back since.
//!
//! A change undone later is not the suspect, nor is one that only undoes an
//! earlier change (a rule re-added as it was, as tailscaled restores its
//! rules after a flush): the net change is what caused the loop.
use std::{collections::VecDeque, net::IpAddr};

use super::cause::{Selector, rule_mismatch};
use crate::{
    event::{Event, Kind, Route, Rule},
    prefix::{self, covers},
};

/// Changes kept for naming suspects.
const CHANGES_KEPT: usize = 16384;

/// Recent successful route and rule changes, per namespace, newest last.
#[derive(Default)]
pub struct Changes {
    seen: VecDeque<(u32, Event)>,
}

/// What routed a loop's packet back: the question a suspect answers.
pub struct Decision<'a> {
    pub netns: u32,
    /// The table whose route sent the packet back.
    pub table: u32,
    /// That route (from the mirror, or the kernel's answer now).
    pub chosen: Option<&'a Route>,
    /// The rule that sent the packet to `table`.
    pub rule_priority: Option<u32>,
    pub packet: &'a Selector<'a>,
}

impl Decision<'_> {
    fn dst(&self) -> IpAddr {
        self.packet.dst
    }

    fn chosen_len(&self) -> u8 {
        self.chosen
            .and_then(|r| r.dst.as_deref())
            .and_then(prefix::len)
            .unwrap_or(0)
    }
}

/// A change as the suspect search reads it.
enum Step<'a> {
    RouteGone(&'a Route),
    RouteSet(&'a Route),
    RuleAdd(&'a Rule),
    RuleDel(&'a Rule),
}

fn step(e: &Event) -> Option<Step<'_>> {
    let c = e.change()?;
    Some(match e.kind {
        Kind::RouteDel => Step::RouteGone(c.route.as_ref()?),
        Kind::RouteAdd | Kind::RouteReplace => Step::RouteSet(c.route.as_ref()?),
        Kind::RuleAdd => Step::RuleAdd(c.rule.as_ref()?),
        Kind::RuleDel => Step::RuleDel(c.rule.as_ref()?),
        _ => return None,
    })
}

impl Changes {
    /// Keeps `e` if it is a successful rule or route change.
    pub fn note(&mut self, netns: u32, e: &Event) {
        if !matches!(
            e.kind,
            Kind::RouteDel | Kind::RouteAdd | Kind::RouteReplace | Kind::RuleDel | Kind::RuleAdd
        ) {
            return;
        }
        if e.change()
            .is_some_and(|c| c.result.as_deref().is_some_and(|r| r != "ok"))
        {
            return;
        }
        if self.seen.len() >= CHANGES_KEPT {
            self.seen.pop_front();
        }
        self.seen.push_back((netns, e.clone()));
    }

    /// The most recent change in the decision's namespace that made the
    /// looping route the chosen one (see the module's description).
    pub fn suspect(&self, d: &Decision) -> Option<&Event> {
        let in_ns: Vec<&Event> = self
            .seen
            .iter()
            .filter(|(ns, _)| *ns == d.netns)
            .map(|(_, e)| e)
            .collect();
        for (i, e) in in_ns.iter().enumerate().rev() {
            let Some(s) = step(e) else { continue };
            let (older, newer) = (&in_ns[..i], &in_ns[i + 1..]);
            let found = match s {
                Step::RouteGone(r) => {
                    removed_cover(r, d)
                        && !newer
                            .iter()
                            .any(|n| matches!(step(n), Some(Step::RouteSet(a)) if same_slot(a, r)))
                }
                Step::RouteSet(r) => {
                    d.chosen
                        .is_some_and(|c| r.table == Some(d.table) && same_route(r, c))
                        && !older.iter().rev().any(
                            |o| matches!(step(o), Some(Step::RouteGone(g)) if same_route(g, r)),
                        )
                }
                Step::RuleAdd(r) => {
                    sends_to_table(r, d)
                        && d.rule_priority.is_none_or(|p| r.priority.unwrap_or(0) == p)
                        && !older
                            .iter()
                            .rev()
                            .any(|o| matches!(step(o), Some(Step::RuleDel(g)) if same_rule(g, r)))
                }
                Step::RuleDel(r) => {
                    d.rule_priority.is_some_and(|p| r.priority.unwrap_or(0) < p)
                        && selects(r, d)
                        && !sends_to_table(r, d)
                        && !newer
                            .iter()
                            .any(|n| matches!(step(n), Some(Step::RuleAdd(a)) if same_rule(a, r)))
                }
            };
            if found {
                return Some(e);
            }
        }
        None
    }
}

/// A removed route of the table that covers the destination more
/// specifically than the route chosen now: its absence lets the lookup
/// fall through to the looping route.
fn removed_cover(r: &Route, d: &Decision) -> bool {
    let Some(dst) = r.dst.as_deref() else {
        return false;
    };
    r.table == Some(d.table)
        && prefix::len(dst).is_some_and(|l| l > d.chosen_len())
        && covers(dst, d.dst())
}

fn same_prefix(a: &Route, b: &Route) -> bool {
    match (a.dst.as_deref(), b.dst.as_deref()) {
        (Some(x), Some(y)) => prefix::parse(x).is_some() && prefix::parse(x) == prefix::parse(y),
        _ => false,
    }
}

/// Same table, prefix and metric: a route that takes the other's place.
fn same_slot(a: &Route, b: &Route) -> bool {
    a.table == b.table && same_prefix(a, b) && a.metric.unwrap_or(0) == b.metric.unwrap_or(0)
}

/// The same route: slot, type, gateway and device (where both say them).
fn same_route(a: &Route, b: &Route) -> bool {
    let agree = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    same_slot(a, b)
        && a.rtype.as_deref().unwrap_or("unicast") == b.rtype.as_deref().unwrap_or("unicast")
        && agree(&a.gateway, &b.gateway)
        && agree(&a.dev, &b.dev)
}

/// The same rule, whatever its table is called.
fn same_rule(a: &Rule, b: &Rule) -> bool {
    let plain = |r: &Rule| Rule {
        table_name: None,
        protocol: None,
        ..r.clone()
    };
    plain(a) == plain(b)
}

fn selects(r: &Rule, d: &Decision) -> bool {
    rule_mismatch(r, d.packet).is_none()
}

/// A rule that selects the packet and looks it up in the looping table.
fn sends_to_table(r: &Rule, d: &Decision) -> bool {
    r.action.as_deref().is_none_or(|a| a == "table") && r.table == Some(d.table) && selects(r, d)
}

/// Who made a change, for the advice.
fn who(e: &Event) -> String {
    match e.change().and_then(|c| c.process.as_deref()) {
        None => "the kernel".to_string(),
        Some(p) => match &p.unit {
            Some(u) => format!("{} (pid {}, {u})", p.comm, p.pid),
            None => format!("{} (pid {})", p.comm, p.pid),
        },
    }
}

/// One line of advice for a loop: where its packets go, and the change
/// that sends them there.
pub fn advice(
    dst: IpAddr,
    iface: &str,
    table: Option<u32>,
    route: Option<&str>,
    suspect: Option<&Event>,
) -> String {
    let table_s = table.map_or_else(|| "the table it used".to_string(), |t| format!("table {t}"));
    let mut s = match route {
        Some(r) => format!(
            "packets to {dst} arriving on {iface} match `{r}` in {table_s} and are sent back out of {iface}"
        ),
        None => format!("packets to {dst} arriving on {iface} are routed back out of {iface}"),
    };
    let missing = if route.is_some() {
        format!("a route covering {dst} in {table_s} is missing")
    } else {
        format!("a route covering {dst} is missing")
    };
    let Some((e, c)) = suspect.and_then(|e| Some((e, e.change()?))) else {
        s.push_str(&format!(
            "; {missing} (no change seen in this session explains it)"
        ));
        return s;
    };
    let (when, by) = (&e.ts, who(e));
    let route_of = || {
        c.route
            .as_ref()
            .map(crate::describe::route_short)
            .unwrap_or_default()
    };
    let rule_of = || {
        c.rule
            .as_ref()
            .map(crate::describe::rule)
            .unwrap_or_default()
    };
    let why = match e.kind {
        Kind::RouteDel => format!(
            "; {missing}: `{}` was removed from {table_s} at {when} by {by} and not restored",
            route_of()
        ),
        Kind::RouteAdd => format!(
            ": `{}` was added to {table_s} at {when} by {by}",
            route_of()
        ),
        Kind::RouteReplace => {
            let old = c
                .old
                .as_ref()
                .map(|o| format!(" (it replaced `{}`)", crate::describe::route_short(o)))
                .unwrap_or_default();
            format!(
                ": `{}` was put in {table_s} at {when} by {by}{old}",
                route_of()
            )
        }
        Kind::RuleAdd => format!(
            ": rule `{}` sending them to {table_s} was added at {when} by {by}",
            rule_of()
        ),
        Kind::RuleDel => format!(
            ": rule `{}`, which sent them elsewhere first, was removed at {when} by {by} and not restored",
            rule_of()
        ),
        _ => String::new(),
    };
    s.push_str(&why);
    s
}
