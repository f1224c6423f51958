//! Who holds each namespace that no bind mount holds: its newest process,
//! read from /proc at every scan. When the namespace is found gone, its
//! processes have exited and their /proc entries with them, so what the
//! last scan read is all there is to name the process whose exit ended it.
//!
//! Per scan this costs one read of `/proc/PID/stat` per such namespace
//! (the holder's name may change with an exec), and more only when the
//! namespace's processes changed.
use std::{collections::HashMap, fs, os::unix::fs::MetadataExt};

use tracer_common::COMM_LEN;

use super::{netns_scan::Scan, task::Task};
use crate::event::Source;

/// Where cgroup v2 is mounted: a process's cgroup id is the inode of its
/// directory there (bpf_get_current_cgroup_id's value).
const CGROUP2: &str = "/sys/fs/cgroup";

/// What the last scans read about each namespace's processes.
#[derive(Debug, Default)]
pub struct Holders {
    by_ns: HashMap<u32, Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// The processes when `newest` was chosen.
    pids: Vec<u32>,
    /// Start time (clock ticks since boot) of each process read so far.
    starts: HashMap<u32, u64>,
    newest: Option<Task>,
}

/// The fields of `/proc/PID/stat` the tracer needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: [u8; COMM_LEN],
    pub ppid: u32,
    /// Clock ticks since boot.
    pub start: u64,
}

impl Holders {
    /// Sets `newest` of each namespace of `scan` that processes alone
    /// hold (but `own`, the tracer's, which never goes away); forgets the
    /// namespaces `scan` no longer has.
    pub fn fill(&mut self, scan: &mut Scan, own: u32) {
        self.by_ns
            .retain(|inode, _| scan.get(inode).is_some_and(|f| f.mounts.is_empty()));
        for (&inode, found) in scan.iter_mut() {
            if inode == own || !found.mounts.is_empty() || found.pids.is_empty() {
                continue;
            }
            let known = self.by_ns.entry(inode).or_default();
            found.newest = known.newest(&found.pids, inode, read_stat);
        }
    }
}

impl Known {
    /// The newest of `pids` (latest start, then highest pid), as a task
    /// in namespace `inode`.
    fn newest(
        &mut self,
        pids: &[u32],
        inode: u32,
        stat: impl Fn(u32) -> Option<Stat>,
    ) -> Option<Task> {
        if self.pids == pids
            && let Some(t) = self.newest.as_mut()
        {
            // The same processes: only its name and parent may have
            // changed. One that exited since the listing is as last read.
            if let Some(s) = stat(t.pid) {
                if s.ppid != t.ppid {
                    t.ppid = s.ppid;
                    t.parent_comm = stat(s.ppid).map(|p| p.comm).unwrap_or_default();
                }
                t.comm = s.comm;
            }
            return Some(*t);
        }
        self.starts.retain(|p, _| pids.contains(p));
        let mut best: Option<(u64, u32)> = None;
        for &pid in pids {
            let start = match self.starts.get(&pid) {
                Some(&start) => start,
                None => match stat(pid) {
                    Some(s) => {
                        self.starts.insert(pid, s.start);
                        s.start
                    }
                    None => continue,
                },
            };
            if best.is_none_or(|b| (start, pid) > b) {
                best = Some((start, pid));
            }
        }
        self.pids = pids.to_vec();
        let Some((pid, s)) = best.and_then(|(_, pid)| Some((pid, stat(pid)?))) else {
            // Exited since the listing: the holder read before, if it is
            // still listed, is the best there is.
            self.newest = self.newest.filter(|t| pids.contains(&t.pid));
            return self.newest;
        };
        let task = Task {
            source: Source::Tracer,
            pid,
            tid: pid,
            ppid: s.ppid,
            uid: read_uid(pid).unwrap_or(0),
            netns: inode,
            cgroup_id: read_cgroup_id(pid).unwrap_or(0),
            comm: s.comm,
            parent_comm: stat(s.ppid).map(|p| p.comm).unwrap_or_default(),
            ts_ns: 0,
        };
        self.newest = Some(task);
        Some(task)
    }
}

/// `/proc/PID/stat`, `None` once the process is gone.
fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The name (between the first `(` and the last `)`: it may hold either),
/// the parent (field 4) and the start time (field 22).
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.as_bytes();
    let mut comm = [0; COMM_LEN];
    let n = name.len().min(COMM_LEN - 1);
    comm[..n].copy_from_slice(&name[..n]);
    let fields: Vec<&str> = tail.split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The real uid (the first of `Uid:` in `/proc/PID/status`).
fn read_uid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The cgroup v2 id: the inode of the process's cgroup directory.
fn read_cgroup_id(pid: u32) -> Option<u64> {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(fs::metadata(format!("{CGROUP2}{path}")).ok()?.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_of(comm: &str, ppid: u32, start: u64) -> Stat {
        let mut s = parse_stat(&format!(
            "1 ({comm}) S {ppid} 1 1 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 100"
        ))
        .unwrap();
        s.start = start;
        s
    }

    #[test]
    fn stat_fields_parse() {
        let s = parse_stat(
            "4242 (a) b)) S 17 4242 4242 0 -1 4194304 90 0 0 0 0 0 0 0 20 0 1 0 98765 5 1",
        )
        .unwrap();
        assert_eq!(&s.comm[..7], b"a) b)\0\0");
        assert_eq!((s.ppid, s.start), (17, 98765));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    /// The newest by start time (then pid) is chosen; the same processes
    /// at the next scan are not read again but for the holder's name.
    #[test]
    fn newest_holder_is_chosen_and_renamed() {
        let procs = std::cell::RefCell::new(HashMap::from([
            (10, stat_of("unshare", 1, 500)),
            (30, stat_of("old", 1, 100)),
            (1, stat_of("init", 0, 1)),
        ]));
        let reads = std::cell::Cell::new(0);
        let stat = |pid: u32| {
            reads.set(reads.get() + 1);
            procs.borrow().get(&pid).cloned()
        };
        let mut k = Known::default();
        let t = k.newest(&[10, 30], 77, stat).unwrap();
        assert_eq!((t.pid, t.netns, t.ppid), (10, 77, 1));
        assert_eq!(&t.comm[..8], b"unshare\0");
        assert_eq!(&t.parent_comm[..5], b"init\0");
        // unshare execs sleep: same pid, new name.
        procs.borrow_mut().insert(10, stat_of("sleep", 1, 500));
        reads.set(0);
        let t = k.newest(&[10, 30], 77, stat).unwrap();
        assert_eq!(&t.comm[..6], b"sleep\0");
        assert_eq!(reads.get(), 1, "one read when nothing else changed");
        // A newer process joins.
        procs.borrow_mut().insert(40, stat_of("bash", 10, 900));
        let t = k.newest(&[10, 30, 40], 77, stat).unwrap();
        assert_eq!(t.pid, 40);
        assert_eq!(&t.parent_comm[..6], b"sleep\0");
        // Equal start times: the higher pid.
        procs.borrow_mut().insert(50, stat_of("twin", 10, 900));
        assert_eq!(k.newest(&[10, 40, 50], 77, stat).unwrap().pid, 50);
        // The holder exits between the listing and the read: as read
        // before, while it is listed; not once it is not.
        procs.borrow_mut().remove(&50);
        assert_eq!(k.newest(&[10, 40, 50], 77, stat).unwrap().pid, 50);
        assert_eq!(k.newest(&[10, 50, 60], 77, stat).unwrap().pid, 50);
        assert_eq!(k.newest(&[60], 77, stat), None);
        // Every process gone before it could be read: no holder.
        let mut k = Known::default();
        assert_eq!(k.newest(&[99], 77, stat), None);
    }

    #[test]
    fn this_process_reads_as_a_holder() {
        let me = std::process::id();
        let mut k = Known::default();
        let t = k.newest(&[me], 5, read_stat).unwrap();
        assert_eq!(t.pid, me);
        assert_eq!(t.uid, read_uid(me).unwrap());
        assert!(t.comm[0] != 0);
    }
}
