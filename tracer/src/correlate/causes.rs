//! Why the kernel changed a route that no request named: the last link or
//! address action in the namespace, read from its request (or seen by a
//! kernel hook), explains what the kernel does next, for a while.
//! Removals and additions have separate explanations: `ip link set X down`
//! explains routes that vanish, `ip link set X up` and `ip addr add` the
//! routes the kernel adds (local, broadcast, prefix and link routes).
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::collect::task::Task;

use crate::event::{Cause, Op, Source};

/// How long a link or address action explains kernel-made changes. IPv6
/// routes of a new address come after duplicate address detection, about a
/// second later, from a kworker.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct RecentCause {
    pub cause: Cause,
    pub who: Task,
    pub source: Source,
    pub at: Instant,
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

/// The recent link/address actions of each namespace, one per direction.
#[derive(Default)]
pub struct Causes {
    by_ns: HashMap<(u32, bool), RecentCause>,
}

fn key(netns: u32, op: Op) -> (u32, bool) {
    (netns, op == Op::Add)
}

impl Causes {
    /// Remember an action (a request read at a syscall).
    pub fn note(&mut self, netns: u32, c: RecentCause) {
        if let Some(op) = direction(c.cause) {
            self.by_ns.insert(key(netns, op), c);
        }
    }

    /// The last action in `netns` that explains a change `op`, if recent.
    pub fn recent(&self, netns: u32, op: Op, now: Instant) -> Option<RecentCause> {
        self.by_ns
            .get(&key(netns, op))
            .filter(|c| now.duration_since(c.at) < CAUSE_WINDOW)
            .cloned()
    }

    /// What explains a change `op` the kernel made in the context of the
    /// task in `hdr` (a kernel hook's record with no request): that task's
    /// own recent link/address action; else namespace teardown for a
    /// removal by a kworker running cleanup_net; else unknown.
    pub fn for_task(&self, hdr: &Task, op: Op, source: Source, now: Instant) -> RecentCause {
        if let Some(c) = self.recent(hdr.netns, op, now)
            && c.who.tid == hdr.tid
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
        }
    }
}
