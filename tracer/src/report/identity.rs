//! When two events are about the same rule or route, and who made a change.
//!
//! A rule is the same rule when its family, priority, table, action and
//! selectors are (its `protocol` is not part of it: a rule put back by
//! another program is still the rule that was removed). A route is the
//! same route when its family, table, destination, metric and type are (as
//! the kernel keys its routes; the next hop and `protocol` may differ). The
//! namespace is part of both.
use serde::Serialize;

use crate::event::{Change, Family, Netns, Process, Route, Rule};

/// A rule or a route, as events carry them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    Rule(Rule),
    Route(Route),
}

impl Object {
    pub fn of(c: &Change) -> Option<Object> {
        match (&c.rule, &c.route) {
            (Some(r), _) => Some(Object::Rule(r.clone())),
            (_, Some(r)) => Some(Object::Route(r.clone())),
            _ => None,
        }
    }
    pub fn is_rule(&self) -> bool {
        matches!(self, Object::Rule(_))
    }
}

/// Which namespace: by inode when known (names can be reused), else by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsKey {
    Inode(u32),
    Name(String),
    Unknown,
}

impl NsKey {
    pub fn of(n: &Netns) -> NsKey {
        match (n.inode, &n.name) {
            (Some(i), _) => NsKey::Inode(i),
            (None, Some(name)) => NsKey::Name(name.clone()),
            _ => NsKey::Unknown,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    family: Option<Family>,
    priority: Option<u32>,
    table: Option<u32>,
    action: Option<String>,
    goto: Option<u32>,
    src: Option<String>,
    dst: Option<String>,
    fwmark: Option<u32>,
    fwmask: Option<u32>,
    iif: Option<String>,
    oif: Option<String>,
    uid_range: Option<String>,
    ipproto: Option<u8>,
    sport: Option<String>,
    dport: Option<String>,
    tos: Option<u8>,
    suppress_prefixlen: Option<u32>,
    invert: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    family: Option<Family>,
    table: Option<u32>,
    /// `0.0.0.0/0` or `::/0` when the event has none.
    dst: Option<String>,
    /// 0 when the event has none (IPv4's default priority).
    metric: u32,
    /// `unicast` when the event has none.
    rtype: String,
}

/// The identity of a rule or route in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Rule(NsKey, Box<RuleId>),
    Route(NsKey, RouteId),
}

impl Key {
    pub fn new(netns: &Netns, o: &Object) -> Key {
        let ns = NsKey::of(netns);
        match o {
            Object::Rule(r) => Key::Rule(
                ns,
                Box::new(RuleId {
                    family: r.family,
                    priority: r.priority,
                    table: r.table,
                    action: r.action.clone(),
                    goto: r.goto,
                    src: r.src.clone(),
                    dst: r.dst.clone(),
                    fwmark: r.fwmark,
                    fwmask: r.fwmask,
                    iif: r.iif.clone(),
                    oif: r.oif.clone(),
                    uid_range: r.uid_range.clone(),
                    ipproto: r.ipproto,
                    sport: r.sport.clone(),
                    dport: r.dport.clone(),
                    tos: r.tos,
                    suppress_prefixlen: r.suppress_prefixlen,
                    invert: r.invert,
                }),
            ),
            Object::Route(r) => Key::Route(
                ns,
                RouteId {
                    family: r.family,
                    table: r.table,
                    dst: r
                        .dst
                        .clone()
                        .or_else(|| r.family.map(|f| f.any().to_string())),
                    metric: r.metric.unwrap_or(0),
                    rtype: r.rtype.clone().unwrap_or_else(|| "unicast".into()),
                },
            ),
        }
    }
}

/// Who made a change, as a report names it: a systemd unit (all its
/// processes), else a process, else the kernel (no process attributed).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Actor {
    pub unit: Option<String>,
    pub comm: Option<String>,
    /// Every process id seen, in order.
    pub pids: Vec<u32>,
    pub exe: Option<String>,
}

/// What groups changes into one episode: the unit when known, else the
/// process, else the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorKey {
    Unit(String),
    Pid(u32),
    Kernel,
}

impl Actor {
    pub fn of(p: Option<&Process>) -> Actor {
        match p {
            None => Actor::default(),
            Some(p) => Actor {
                unit: p.unit.clone(),
                comm: Some(p.comm.clone()),
                pids: vec![p.pid],
                exe: p.exe.clone(),
            },
        }
    }

    pub fn key(p: Option<&Process>) -> ActorKey {
        match p {
            None => ActorKey::Kernel,
            Some(Process { unit: Some(u), .. }) => ActorKey::Unit(u.clone()),
            Some(p) => ActorKey::Pid(p.pid),
        }
    }

    /// Adds a process of the same unit.
    pub fn merge(&mut self, p: Option<&Process>) {
        if let Some(p) = p
            && !self.pids.contains(&p.pid)
        {
            self.pids.push(p.pid);
        }
    }
}
