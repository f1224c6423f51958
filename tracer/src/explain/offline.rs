//! The kernel's routing decision, evaluated in userspace on a list of rules
//! and routes (a journal's past state, or a live dump): the rules in order
//! with their selectors, `goto`, `nop`, `suppress_prefixlength`, the
//! unreachable/blackhole/prohibit actions; in each table looked up, the
//! longest prefix covering the destination, then the lowest metric, with
//! `throw` sending the walk back to the rules and unreachable, blackhole
//! and prohibit routes ending it (fib_rules_lookup, fib_table_lookup and
//! fib6_table_lookup, as of Linux 6.x).
use std::net::IpAddr;

use serde::Serialize;

use super::lookup::RuleStep;
use crate::{
    event::{Family, Route, Rule},
    packet::cause::{Extra, Selector, Selects, rule_selects_with},
    prefix,
};

/// The packet asked about.
#[derive(Clone, Debug, Default)]
pub struct Question {
    pub dst: Option<IpAddr>,
    pub src: Option<IpAddr>,
    /// The interface it arrives on; none for a packet this host sends
    /// (the rules then see `lo`, as the kernel's output lookup does).
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub mark: u32,
    pub tos: u8,
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// The sender's uid (a forwarded packet has no socket: the kernel
    /// matches it as uid 0, `sock_net_uid(net, NULL)`).
    pub uid: Option<u32>,
}

/// The kernel's errors for a lookup that ends without a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WalkError {
    /// No rule gave a route, or an `unreachable` rule.
    Enetunreach,
    /// An `unreachable` route.
    Ehostunreach,
    /// `prohibit`.
    Eacces,
    /// `blackhole`.
    Einval,
}

impl WalkError {
    pub fn errno(self) -> i32 {
        match self {
            WalkError::Enetunreach => libc::ENETUNREACH,
            WalkError::Ehostunreach => libc::EHOSTUNREACH,
            WalkError::Eacces => libc::EACCES,
            WalkError::Einval => libc::EINVAL,
        }
    }
    pub fn text(self) -> String {
        std::io::Error::from_raw_os_error(self.errno()).to_string()
    }
    fn of(kind: &str, rule: bool) -> WalkError {
        match kind {
            "prohibit" => WalkError::Eacces,
            "blackhole" => WalkError::Einval,
            _ if rule => WalkError::Enetunreach,
            _ => WalkError::Ehostunreach,
        }
    }
}

/// The walk: every rule considered, with what it did; the route chosen or
/// the error; and the selectors it could not evaluate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Walk {
    pub steps: Vec<RuleStep>,
    pub route: Option<Route>,
    pub error: Option<WalkError>,
    pub unknown: Vec<String>,
}

/// What one table gives for the destination.
enum TableAnswer<'a> {
    NoTable,
    NoRoute,
    Throw(&'a Route),
    Reject(&'a Route),
    Found(&'a Route),
}

/// Walk `rules` (in the kernel's list order) and `routes` for `q`.
pub fn walk(rules: &[Rule], routes: &[Route], q: &Question) -> Walk {
    let mut w = Walk::default();
    let Some(dst) = q.dst else {
        return w;
    };
    let family = if dst.is_ipv6() {
        Family::Inet6
    } else {
        Family::Inet
    };
    let src = q.src.unwrap_or(if dst.is_ipv6() {
        IpAddr::from([0u16; 8])
    } else {
        IpAddr::from([0u8; 4])
    });
    let mut list: Vec<&Rule> = rules.iter().filter(|r| r.family == Some(family)).collect();
    list.sort_by_key(|r| r.priority.unwrap_or(0));
    let sel = Selector {
        family,
        src,
        dst,
        iif: q.iif.as_deref().unwrap_or("lo"),
        mark: q.mark,
        proto: q.proto.unwrap_or(0),
    };
    let extra = Extra {
        oif: q.oif.as_deref(),
        tos: q.tos,
        proto_known: q.proto.is_some(),
        sport: q.sport,
        dport: q.dport,
        uid: q.uid.or(q.iif.as_ref().map(|_| 0)),
    };
    let mut i = 0;
    while i < list.len() {
        let r = list[i];
        i += 1;
        match rule_selects_with(r, &sel, Some(&extra)) {
            Selects::Yes => {}
            Selects::No(why) => {
                w.step(r, "skipped", Some(why));
                continue;
            }
            Selects::Unknown(why) => {
                w.unknown
                    .push(format!("rule {}: {why}", r.priority.unwrap_or(0)));
                w.step(r, "unknown", Some(format!("{why} (taken as not matching)")));
                continue;
            }
        }
        if w.act(r, &list, &mut i, routes, family, dst) {
            return w;
        }
    }
    w.error = Some(WalkError::Enetunreach);
    w
}

impl Walk {
    fn step(&mut self, r: &Rule, verdict: &'static str, reason: Option<String>) {
        self.steps.push(RuleStep {
            rule: r.clone(),
            verdict,
            reason,
        });
    }

    /// What a selecting rule does; true when it decides.
    fn act(
        &mut self,
        r: &Rule,
        list: &[&Rule],
        i: &mut usize,
        routes: &[Route],
        family: Family,
        dst: IpAddr,
    ) -> bool {
        match r.action.as_deref().unwrap_or("table") {
            "goto" => {
                let target = r.goto.unwrap_or(0);
                match list.iter().position(|x| x.priority.unwrap_or(0) == target) {
                    Some(t) if t >= *i => {
                        self.step(r, "goto", Some(format!("goto {target}")));
                        *i = t;
                    }
                    _ => self.step(
                        r,
                        "no_match",
                        Some(format!("goto {target}: no later rule has that priority")),
                    ),
                }
                false
            }
            "nop" => {
                self.step(r, "no_match", Some("nop".into()));
                false
            }
            "table" => self.lookup(r, routes, family, dst),
            other => {
                self.step(r, "stop", None);
                self.error = Some(WalkError::of(other, true));
                true
            }
        }
    }

    /// A rule that looks a table up; true when it decides.
    fn lookup(&mut self, r: &Rule, routes: &[Route], family: Family, dst: IpAddr) -> bool {
        let table = r.table.unwrap_or(0);
        match table_lookup(routes, family, table, dst) {
            TableAnswer::NoTable => {
                self.step(r, "no_match", Some(format!("table {table} does not exist")));
                false
            }
            TableAnswer::NoRoute => {
                self.step(r, "no_match", None);
                false
            }
            TableAnswer::Throw(t) => {
                let d = crate::describe::route_short(t);
                self.step(r, "no_match", Some(format!("{d}: back to the rules")));
                false
            }
            TableAnswer::Reject(t) => {
                self.step(r, "matched", None);
                self.error = Some(WalkError::of(t.rtype.as_deref().unwrap_or(""), false));
                self.route = Some(t.clone());
                true
            }
            TableAnswer::Found(t) => {
                let len = t.dst.as_deref().and_then(prefix::len).unwrap_or(0);
                if let Some(n) = r.suppress_prefixlen.filter(|n| u32::from(len) <= *n) {
                    let why = format!(
                        "suppressed: {} has prefix length {len} <= {n}",
                        crate::describe::route_short(t)
                    );
                    self.step(r, "suppressed", Some(why));
                    return false;
                }
                self.step(r, "matched", None);
                self.route = Some(t.clone());
                true
            }
        }
    }
}

/// The route `table` gives for `dst`: the longest prefix covering it, then
/// the lowest metric (the kernel's alias order; route TOS is not recorded,
/// so every route counts as TOS 0).
fn table_lookup(routes: &[Route], family: Family, table: u32, dst: IpAddr) -> TableAnswer<'_> {
    let mut in_table = routes
        .iter()
        .filter(|r| r.family == Some(family) && r.table == Some(table))
        .peekable();
    if in_table.peek().is_none() {
        return TableAnswer::NoTable;
    }
    let best = in_table
        .filter_map(|r| {
            let net = prefix::parse(r.dst.as_deref()?)?;
            net.contains(&dst).then_some((net.prefix_len(), r))
        })
        .min_by_key(|(len, r)| (std::cmp::Reverse(*len), r.metric.unwrap_or(0)));
    match best {
        None => TableAnswer::NoRoute,
        Some((_, r)) => match r.rtype.as_deref() {
            Some("throw") => TableAnswer::Throw(r),
            Some("unreachable" | "prohibit" | "blackhole") => TableAnswer::Reject(r),
            _ => TableAnswer::Found(r),
        },
    }
}

#[cfg(test)]
#[path = "offline_tests.rs"]
mod tests;
