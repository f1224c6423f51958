//! Turning the correlator's outcomes into events: the process (from the
//! record's header, /proc, cgroups and units, cached per burst), the
//! namespace's name and the tables' names.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::collect::task::Task;

use super::Enricher;
use crate::{
    clock::Clock,
    correlate::{Object, Outcome},
    escape::comm_from_bytes,
    event::{Body, Change, Event, Kind, Lost, Netns, Op, Process, Source},
    netlink::names::TableNames,
};

/// Turns outcomes into events: process, cgroup/unit, namespace and table names.
pub struct Presenter {
    pub clock: Clock,
    pub enricher: Enricher,
    pub tables: TableNames,
    /// The process per (pid, cgroup id), so bursts cost one /proc read and
    /// no re-escaping of names.
    cache: HashMap<(u32, u64), Cached>,
    /// Size at which stale entries are swept from `cache`.
    sweep_at: usize,
}

/// How long a cached process is used for a burst's changes.
const PROCESS_FRESH: Duration = Duration::from_secs(2);
/// Smallest size of the cache at which it is swept.
const SWEEP_MIN: usize = 256;

/// A process as last presented, with the header fields it was built from.
struct Cached {
    process: Arc<Process>,
    tid: u32,
    ppid: u32,
    uid: u32,
    comm: [u8; 16],
    parent_comm: [u8; 16],
    at: Instant,
}

impl Presenter {
    pub fn new(clock: Clock, enricher: Enricher, tables: TableNames) -> Self {
        Presenter {
            clock,
            enricher,
            tables,
            cache: HashMap::new(),
            sweep_at: SWEEP_MIN,
        }
    }

    /// A process called exec: its executable is `filename` from now on,
    /// and what was cached about it is stale.
    pub fn note_exec(&mut self, pid: u32, filename: String) {
        self.enricher.processes.note_exec(pid, filename);
        self.cache.retain(|k, _| k.0 != pid);
    }

    fn process(&mut self, h: &Task, now: Instant) -> Arc<Process> {
        let key = (h.pid, h.cgroup_id);
        if let Some(c) = self.cache.get(&key)
            && now.duration_since(c.at) < PROCESS_FRESH
        {
            if c.tid == h.tid
                && c.ppid == h.ppid
                && c.uid == h.uid
                && c.comm == h.comm
                && c.parent_comm == h.parent_comm
            {
                return c.process.clone();
            }
            // Another thread, or the process changed its name: the exe,
            // cgroup and unit still hold.
            let c = &*c.process;
            let (exe, cgroup, unit) = (c.exe.clone(), c.cgroup.clone(), c.unit.clone());
            return self.remember(h, exe, cgroup, unit, now);
        }
        let exe = self.enricher.processes.exe(h.pid);
        let (cgroup, unit) = match self.enricher.cgroups.as_mut() {
            Some(r) => (r.resolve(h.cgroup_id), r.unit(h.cgroup_id)),
            None => (None, None),
        };
        self.remember(h, exe, cgroup, unit, now)
    }

    fn remember(
        &mut self,
        h: &Task,
        exe: Option<String>,
        cgroup: Option<String>,
        unit: Option<String>,
        now: Instant,
    ) -> Arc<Process> {
        let parent = comm_from_bytes(&h.parent_comm);
        let process = Arc::new(Process {
            pid: h.pid,
            tid: h.tid,
            comm: comm_from_bytes(&h.comm),
            ppid: (h.ppid != 0).then_some(h.ppid),
            parent_comm: (!parent.is_empty()).then_some(parent),
            exe,
            uid: h.uid,
            cgroup,
            unit,
            // The tracer's own changes are the guard's repairs.
            guard: h.pid == std::process::id(),
        });
        // Entries older than PROCESS_FRESH are never used again: the
        // cache holds about one burst's senders, not every sender since
        // start-up (a sender is most often a short-lived `ip`, a new pid
        // each time: kept, they made the RSS creep for minutes).
        if self.cache.len() >= self.sweep_at {
            self.cache
                .retain(|_, c| now.duration_since(c.at) < PROCESS_FRESH);
            self.sweep_at = (self.cache.len() * 2).max(SWEEP_MIN);
        }
        self.cache.insert(
            (h.pid, h.cgroup_id),
            Cached {
                process: process.clone(),
                tid: h.tid,
                ppid: h.ppid,
                uid: h.uid,
                comm: h.comm,
                parent_comm: h.parent_comm,
                at: now,
            },
        );
        process
    }

    pub fn netns(&mut self, inode: u32) -> Netns {
        self.netns_at(inode, None, Instant::now())
    }

    /// Namespace `inode` as it was at `boot_ns`, when known (its inode
    /// may have another namespace's name by now).
    fn netns_at(&mut self, inode: u32, boot_ns: Option<u64>, now: Instant) -> Netns {
        Netns {
            inode: (inode != 0).then_some(inode),
            name: self.enricher.netns.name_when(inode, boot_ns, now),
        }
    }

    /// The event of an outcome; `now` is the time of the batch.
    pub fn event(&mut self, o: Outcome, now: Instant) -> Event {
        let process = o.who.as_ref().map(|h| self.process(h, now));
        let netns = self.netns_at(o.netns, o.ts_boot_ns, now);
        let (mut old, mut old_nexthop) = (None, None);
        match o.replaced {
            Some(Object::Route(mut r)) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                old = Some(r);
            }
            Some(Object::Nexthop(n)) => old_nexthop = Some(*n),
            Some(Object::Rule(_)) | None => {}
        }
        let (kind, rule, route, nexthop) = match o.object {
            Object::Route(mut r) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                let kind = match (&old, o.op) {
                    (Some(_), Op::Add) => Kind::RouteReplace,
                    _ => Kind::route(o.op),
                };
                (kind, None, Some(r), None)
            }
            Object::Rule(mut r) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                (Kind::rule(o.op), Some(*r), None, None)
            }
            Object::Nexthop(n) => {
                let kind = match (&old_nexthop, o.op) {
                    (Some(_), Op::Add) => Kind::NexthopReplace,
                    (None, Op::Add) => Kind::NexthopAdd,
                    (_, Op::Del) => Kind::NexthopDel,
                };
                (kind, None, None, Some(*n))
            }
        };
        Event {
            // A change no record saw is as old as its notification.
            ts: self.clock.wall(o.ts_boot_ns.or_else(|| {
                o.seen.map(|at| {
                    let ago = now.saturating_duration_since(at).as_nanos() as u64;
                    Clock::boot_now_ns().saturating_sub(ago)
                })
            })),
            kind,
            source: o.source,
            body: Body::Change(Box::new(Change {
                process,
                netns,
                rule,
                route,
                result: o.result,
                cause: o.cause,
                old,
                nexthop,
                old_nexthop,
                cause_nhid: o.cause_nhid,
                nl_seq: o.nl_seq,
                note: o.note.map(|n| super::notes::text(n, o.op)),
            })),
        }
    }

    pub fn lost(&self, source: Source, count: u64, location: &str) -> Event {
        Event {
            ts: self.clock.wall(None),
            kind: Kind::Lost,
            source,
            body: Body::Lost(Lost {
                count,
                location: location.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change from another short-lived `ip`: the cache keeps about
    /// the last PROCESS_FRESH of senders, not every sender since start-up.
    #[test]
    fn the_process_cache_keeps_recent_senders_only() {
        let enricher = Enricher::new().unwrap();
        let mut p = Presenter::new(Clock::new(), enricher, TableNames::load());
        let t = Instant::now();
        let mut most = 0;
        for i in 0..3000u32 {
            let h = Task::named(4_000_000 + i, 1, "ip");
            let now = t + Duration::from_millis(10 * u64::from(i));
            let a = p.process(&h, now);
            assert_eq!(a.pid, 4_000_000 + i);
            // The same sender within the burst: the cached process.
            assert!(Arc::ptr_eq(&a, &p.process(&h, now)));
            most = most.max(p.cache.len());
        }
        // 200 senders per 2 s; swept at twice what the last sweep left.
        assert!(most <= 2 * 201 + 1, "{most}");
    }
}
