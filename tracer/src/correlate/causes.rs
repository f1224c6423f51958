//! Why the kernel changed a route that no request named: a recent link or
//! address action in the namespace, read from its request (or seen by a
//! kernel hook), explains what the kernel does next to routes on that
//! action's device, for a while. Removals and additions have separate
//! explanations: `ip link set X down` explains routes that vanish from X,
//! `ip link set X up` and `ip addr add ... dev X` the routes the kernel adds
//! on X (local, broadcast, prefix and link routes). A route on another
//! device is not explained by it: a removal noticed late is never credited
//! to whatever action happens to come next.
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use crate::collect::task::Task;

use crate::event::{Cause, Op, Route, Source};

/// How long a link or address action explains kernel-made changes. IPv6
/// routes of a new address come after duplicate address detection, about a
/// second later, from a kworker.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(3);

/// Most recent actions kept per namespace and direction.
const KEPT: usize = 8;
/// How close to a link deletion another link's going down or away, which
/// no request named, is taken as part of it (a veth's peer, a VLAN on it).
const PEER_WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct RecentCause {
    pub cause: Cause,
    pub who: Task,
    pub source: Source,
    pub at: Instant,
    /// The device the action was about (None: any, e.g. namespace exit).
    pub ifindex: Option<u32>,
}

impl RecentCause {
    /// Whether this action explains a change to a route on `devs` (its
    /// device and its next hops' devices; empty when the route names
    /// none, which any action may explain).
    pub fn explains(&self, devs: &[u32]) -> bool {
        match self.ifindex {
            Some(i) => devs.is_empty() || devs.contains(&i),
            None => true,
        }
    }
}

/// The devices a route forwards through.
pub fn route_devs(r: &Route) -> Vec<u32> {
    r.ifindex
        .into_iter()
        .chain(r.nexthops.iter().filter_map(|h| h.ifindex))
        .collect()
}

/// The direction of change a cause explains.
pub fn direction(cause: Cause) -> Option<Op> {
    match cause {
        Cause::LinkUp | Cause::AddrAdd => Some(Op::Add),
        Cause::LinkDown
        | Cause::LinkDel
        | Cause::AddrDel
        | Cause::NexthopDel
        | Cause::NexthopReplace
        | Cause::NetnsExit => Some(Op::Del),
        Cause::Unknown => None,
    }
}

/// The recent link/address actions of each namespace, per direction.
#[derive(Default)]
pub struct Causes {
    by_ns: HashMap<(u32, bool), VecDeque<RecentCause>>,
    /// Links that went down or away with nothing read yet to explain it
    /// (namespace, interface, when): a link deletion whose request is read
    /// just after explains them too.
    unexplained_downs: VecDeque<(u32, u32, Instant)>,
}

fn key(netns: u32, op: Op) -> (u32, bool) {
    (netns, op == Op::Add)
}

impl Causes {
    /// Remember an action (a request read at a syscall). A link deletion
    /// also explains the links that went down unexplained just before it
    /// was read (its notifications and its request come by different
    /// ways, in either order).
    pub fn note(&mut self, netns: u32, c: RecentCause) {
        if c.cause == Cause::LinkDel {
            let near = |at: Instant| at.max(c.at).duration_since(at.min(c.at)) < PEER_WINDOW;
            let peers: Vec<u32> = self
                .unexplained_downs
                .iter()
                .filter(|&&(ns, i, at)| ns == netns && Some(i) != c.ifindex && near(at))
                .map(|&(_, i, _)| i)
                .collect();
            self.unexplained_downs
                .retain(|&(ns, i, _)| ns != netns || !peers.contains(&i));
            for ifindex in peers {
                self.push(
                    netns,
                    RecentCause {
                        ifindex: Some(ifindex),
                        ..c.clone()
                    },
                );
            }
        }
        self.push(netns, c);
    }

    fn push(&mut self, netns: u32, c: RecentCause) {
        if let Some(op) = direction(c.cause) {
            let q = self.by_ns.entry(key(netns, op)).or_default();
            if q.len() >= KEPT {
                q.pop_front();
            }
            q.push_back(c);
        }
    }

    /// A link that went down or away in `netns`: when no action explains
    /// that, a link deletion just before it does (the kernel deleting the
    /// link with that one; it goes down first, and its routes go before its
    /// RTM_DELLINK). A deletion read just after it does too (`note`).
    pub fn went_down(&mut self, netns: u32, ifindex: u32, now: Instant) {
        if self.explaining(netns, Op::Del, &[ifindex], now).is_some() {
            return;
        }
        let deletion = self
            .all_recent(netns, Op::Del, now)
            .into_iter()
            .find(|c| c.cause == Cause::LinkDel && now.duration_since(c.at) < PEER_WINDOW);
        match deletion {
            Some(c) => self.push(
                netns,
                RecentCause {
                    ifindex: Some(ifindex),
                    at: now,
                    ..c
                },
            ),
            None => {
                self.unexplained_downs
                    .retain(|&(_, _, at)| now.duration_since(at) < PEER_WINDOW);
                if self.unexplained_downs.len() >= KEPT * 4 {
                    self.unexplained_downs.pop_front();
                }
                self.unexplained_downs.push_back((netns, ifindex, now));
            }
        }
    }

    /// The newest recent action in `netns` that explains a change `op` to
    /// a route on `devs`.
    pub fn explaining(
        &self,
        netns: u32,
        op: Op,
        devs: &[u32],
        now: Instant,
    ) -> Option<RecentCause> {
        self.newest(netns, op, |c| {
            now.duration_since(c.at) < CAUSE_WINDOW && c.explains(devs)
        })
    }

    /// The newest action kept in `netns` for changes `op` that `pred`
    /// accepts.
    fn newest(
        &self,
        netns: u32,
        op: Op,
        pred: impl Fn(&RecentCause) -> bool,
    ) -> Option<RecentCause> {
        self.by_ns
            .get(&key(netns, op))?
            .iter()
            .rev()
            .find(|c| pred(c))
            .cloned()
    }

    /// Every recent action in `netns` that explains changes `op`, newest
    /// first.
    pub fn all_recent(&self, netns: u32, op: Op, now: Instant) -> Vec<RecentCause> {
        self.by_ns
            .get(&key(netns, op))
            .map(|q| {
                q.iter()
                    .rev()
                    .filter(|c| now.duration_since(c.at) < CAUSE_WINDOW)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The newest action of task `tid` in `netns` read at or after `since`
    /// that explains a change `op` to a route on `devs`, whatever its age:
    /// for a removal that waited unexplained, when the request of the
    /// process that flushed is read only after the re-read.
    pub fn of_task(
        &self,
        netns: u32,
        op: Op,
        tid: u32,
        devs: &[u32],
        since: Instant,
    ) -> Option<RecentCause> {
        self.newest(netns, op, |c| {
            c.at >= since && c.who.tid == tid && c.explains(devs)
        })
    }

    /// What explains a change `op` the kernel made in the context of the
    /// task in `hdr` (a kernel hook's record with no request): that task's
    /// own recent link/address action; else namespace teardown for a
    /// removal by a kworker running cleanup_net; else unknown.
    pub fn for_task(&self, hdr: &Task, op: Op, source: Source, now: Instant) -> RecentCause {
        if let Some(c) = self
            .all_recent(hdr.netns, op, now)
            .into_iter()
            .find(|c| c.who.tid == hdr.tid)
        {
            return c;
        }
        let comm = &hdr.comm[..];
        let cause = if op == Op::Del && (comm.starts_with(b"kworker") || comm.starts_with(b"netns"))
        {
            Cause::NetnsExit
        } else {
            Cause::Unknown
        };
        RecentCause {
            cause,
            who: *hdr,
            source,
            at: now,
            ifindex: None,
        }
    }
}

/// The actions that may explain a flush of a namespace's routes, newest
/// first; each route the re-read finds gone takes the first that explains
/// it, or none.
#[derive(Clone, Debug, Default)]
pub struct FlushCauses(pub Vec<RecentCause>);

impl FlushCauses {
    pub fn add(&mut self, c: RecentCause) {
        self.0.insert(0, c);
    }

    /// What explains the removal of `r`: the first action that explains
    /// it. A flush record whose task's action was not read yet says
    /// `Unknown` (the request and the flush are read in either order);
    /// that task's action read since, which says why, takes its place.
    pub fn for_route(&self, r: &Route) -> Option<&RecentCause> {
        let devs = route_devs(r);
        let first = self.0.iter().find(|c| c.explains(&devs))?;
        if first.cause != Cause::Unknown {
            return Some(first);
        }
        self.0
            .iter()
            .find(|c| c.cause != Cause::Unknown && c.who.tid == first.who.tid && c.explains(&devs))
            .or(Some(first))
    }
}
