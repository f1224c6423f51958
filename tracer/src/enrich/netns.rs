//! Names of network namespaces: every namespace the session found (see
//! `collect::netns_scan`) is named by what owns it, in this order:
//!
//! 1. the file name of its bind mount (`ip netns add NAME` mounts it on
//!    `/run/netns/NAME`, Docker on `/run/docker/netns/ID`; one under
//!    /run/netns wins; a name another namespace has too becomes the
//!    mount's full path);
//! 2. else the container or pod of its processes' cgroups (`docker:ID`,
//!    `podman:ID`, `k8s:podUID`, `lxc:NAME`, as in `process.unit`), oldest
//!    process first;
//! 3. else `pid:N`, N its oldest process.
//!
//! The tracer's own namespace is named only by a bind mount. A name from
//! 2 or 3 is kept while the namespace lives (its oldest process may exit).
//! Namespaces the session did not find are named as created by
//! `ip netns add NAME`, looked up as follows.
//!
//! `ip netns` bind-mounts the namespace's nsfs file on `/run/netns/NAME`; `stat` on that path
//! then reports the namespace's inode number (the `net_ns->ns.inum` the kernel side sees).
//! [`NetnsNames`] caches inode → name and rescans the directory on a miss, or when the
//! directory changed, at most once per [`RESCAN_INTERVAL`]. Paths are those of the tracer's
//! mount namespace.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::statfs::{NSFS_MAGIC, statfs};

use crate::collect::netns_scan::{Found, Scan};
use crate::enrich::unit::container_from_cgroup_path;
use crate::nsfs::{NETNS_RUN_DIR, NetnsError, OWN_NETNS, list_names};

/// How long a plain file in [`NETNS_RUN_DIR`] is taken for an `ip netns
/// add` under way (a stale one, left by a crash, is not).
pub const ADDING_WINDOW: Duration = Duration::from_secs(2);

/// Minimum time between two scans of [`NETNS_RUN_DIR`].
pub const RESCAN_INTERVAL: Duration = Duration::from_millis(200);

/// Cache of network namespace inode → name.
#[derive(Debug)]
pub struct NetnsNames {
    dir: PathBuf,
    own: u32,
    names: HashMap<u32, String>,
    /// Last scan, or last check that found `dir` unchanged since it.
    last_scan: Option<Instant>,
    /// Modification time of `dir` at the last scan (`None` if it did not exist).
    dir_mtime: Option<SystemTime>,
    rescan_interval: Duration,
    /// Only count files that are nsfs mounts (always, except in tests).
    require_nsfs: bool,
    /// The names of the namespaces found by the last scan.
    assigned: HashMap<u32, Assigned>,
    /// Names of namespaces gone since, for their last events, oldest
    /// first per inode: the kernel reuses a freed namespace's inode at
    /// once, so one inode may have held several names within a second.
    retired: HashMap<u32, Vec<Retired>>,
    /// Boot-clock time of the last [`assign`](Self::assign) (0: none yet).
    last_assign_ns: u64,
}

/// A gone namespace's name, and when the tracer saw it gone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Retired {
    name: String,
    /// As [`Assigned::since_ns`].
    since_ns: u64,
    /// Boot-clock time of the scan that no longer found it. Its own events
    /// all happened before (the tracer holds a socket in every namespace it
    /// watches, so the inode is not reused before the tracer lets go).
    gone_ns: u64,
}

/// A found namespace's name and whether a bind mount gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Assigned {
    name: String,
    by_mount: bool,
    /// Boot-clock time it existed from at the latest: its bind mount's
    /// creation (the nsfs inode's ctime), else the last scan that did not
    /// find it (0: the first scan found it). Something that happened
    /// before then in its inode happened in another namespace, one the
    /// tracer never saw.
    since_ns: u64,
}

/// Names of gone namespaces kept for late events: inodes, and names per
/// inode.
const RETIRED_MAX: usize = 1024;
const RETIRED_PER_INODE: usize = 8;

impl NetnsNames {
    /// A cache for [`NETNS_RUN_DIR`]. Fails only if the tracer's own namespace file
    /// (`/proc/self/ns/net`) cannot be examined.
    pub fn new() -> Result<Self, NetnsError> {
        Self::with_dir(NETNS_RUN_DIR, true)
    }

    fn with_dir(dir: impl Into<PathBuf>, require_nsfs: bool) -> Result<Self, NetnsError> {
        let own = fs::metadata(OWN_NETNS).map_err(NetnsError::OwnNamespace)?;
        Ok(Self {
            dir: dir.into(),
            own: own.ino() as u32,
            names: HashMap::new(),
            last_scan: None,
            dir_mtime: None,
            rescan_interval: RESCAN_INTERVAL,
            require_nsfs,
            assigned: HashMap::new(),
            retired: HashMap::new(),
            last_assign_ns: 0,
        })
    }

    /// Inode number of the tracer's own network namespace (`/proc/self/ns/net`).
    pub fn own_inode(&self) -> u32 {
        self.own
    }

    /// The `ip netns` name of the namespace with inode `inode`, if it has one. The tracer's
    /// own namespace usually has none and is then reported as `None` (compare with
    /// [`own_inode`](Self::own_inode) to tell it apart).
    #[cfg(test)]
    pub fn name(&mut self, inode: u32) -> Option<String> {
        self.name_at(inode, Instant::now())
    }

    /// [`name`](Self::name), with the time already known (one clock read
    /// per batch of events).
    pub fn name_at(&mut self, inode: u32, now: Instant) -> Option<String> {
        if let Some(a) = self.assigned.get(&inode) {
            return Some(a.name.clone());
        }
        if let Some(r) = self.retired.get(&inode).and_then(|v| v.last()) {
            return Some(r.name.clone());
        }
        self.named_in_dir(inode, now)
    }

    /// The name of namespace `inode` when something happened in it, at
    /// `boot_ns` on the boot clock: a namespace gone since keeps its name
    /// for its late events, and one that took its inode after it is not
    /// named after it (the wrong name would go with its first events).
    pub fn name_when(&mut self, inode: u32, boot_ns: Option<u64>, now: Instant) -> Option<String> {
        let Some(t) = boot_ns else {
            return self.name_at(inode, now);
        };
        // The first of the inode's namespaces still there at `t`, if it
        // was there already.
        let seen = |name: &String, since_ns: u64| (t >= since_ns).then(|| name.clone());
        if let Some(r) = self
            .retired
            .get(&inode)
            .and_then(|v| v.iter().find(|r| r.gone_ns > t))
        {
            return seen(&r.name, r.since_ns);
        }
        if let Some(a) = self.assigned.get(&inode) {
            return seen(&a.name, a.since_ns);
        }
        if t < self.last_assign_ns {
            // The last scan did not find it: gone before the tracer looked.
            return None;
        }
        self.named_in_dir(inode, now)
    }

    /// The name /run/netns gives `inode`, if any.
    fn named_in_dir(&mut self, inode: u32, now: Instant) -> Option<String> {
        // Named by a bind mount it would have been assigned its name.
        if inode == self.own && !self.assigned.is_empty() {
            return None;
        }
        if self.rescan_due(now) {
            if self.current_mtime() != self.dir_mtime {
                self.rescan(now);
            } else {
                // Unchanged: the next look at the directory is due one
                // interval from now, not on every call (a stat per event).
                self.last_scan = Some(now);
            }
        }
        if let Some(name) = self.names.get(&inode) {
            return Some(name.clone());
        }
        if !self.rescan_due(now) {
            return None;
        }
        self.rescan(now);
        self.names.get(&inode).cloned()
    }

    fn rescan_due(&self, now: Instant) -> bool {
        self.last_scan
            .is_none_or(|last| now.saturating_duration_since(last) >= self.rescan_interval)
    }

    fn current_mtime(&self) -> Option<SystemTime> {
        fs::metadata(&self.dir).and_then(|m| m.modified()).ok()
    }

    /// Rebuilds the map from scratch: names may be deleted or reused by new namespaces, and
    /// the inodes of freed namespaces may be reused.
    fn rescan(&mut self, now: Instant) {
        self.last_scan = Some(now);
        self.dir_mtime = self.current_mtime();
        self.names.clear();
        for name in list_names(&self.dir) {
            let path = self.dir.join(&name);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if self.require_nsfs && !is_nsfs(&path) {
                continue;
            }
            if let Ok(inode) = u32::try_from(meta.ino()) {
                self.names.entry(inode).or_insert(name);
            }
        }
    }
}

impl NetnsNames {
    /// Whether `inode` was named by the last scan.
    pub fn knows(&self, inode: u32) -> bool {
        self.assigned.contains_key(&inode)
    }

    /// Whether an `ip netns add` is under way: a plain file in /run/netns
    /// made within [`ADDING_WINDOW`]. iproute2 creates it, enters a new
    /// namespace, then bind-mounts that namespace on it: a namespace found
    /// meanwhile by its process alone may be that one, its name still to
    /// come (it was reported as `pid:N`, then renamed).
    pub fn mount_pending(&self) -> bool {
        let now = SystemTime::now();
        list_names(&self.dir).iter().any(|name| {
            let path = self.dir.join(name);
            fs::symlink_metadata(&path).is_ok_and(|m| {
                m.is_file()
                    && m.len() == 0
                    && !is_nsfs(&path)
                    && m.modified()
                        .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < ADDING_WINDOW)
            })
        })
    }

    /// The inodes of the namespaces bind-mounted in /run/netns now (a
    /// fresh look, not the cache). A scan reads the mounts before the
    /// processes' namespaces: an `ip netns add` that mounted in between
    /// left its namespace found by its process alone, under `pid:N`, and
    /// by the time the scan is used its mount no longer looks under way.
    pub fn mounted_now(&self) -> HashSet<u32> {
        list_names(&self.dir)
            .into_iter()
            .map(|name| self.dir.join(name))
            .filter(|path| !self.require_nsfs || is_nsfs(path))
            .filter_map(|path| fs::metadata(path).ok())
            .filter_map(|m| u32::try_from(m.ino()).ok())
            .collect()
    }

    /// Names the namespaces of `scan` (see the module documentation);
    /// those no longer found keep their name for late events.
    pub fn assign(&mut self, scan: &Scan) {
        self.assign_at(scan, crate::clock::Clock::boot_now_ns());
    }

    /// [`assign`](Self::assign), the scan's time on the boot clock given.
    fn assign_at(&mut self, scan: &Scan, now_ns: u64) {
        let mut next = HashMap::with_capacity(scan.len());
        let mut replaced = Vec::new();
        let since_ns = self.last_assign_ns;
        // The boot clock's offset from the wall clock, for mount times.
        let wall_minus_boot = wall_now_ns() - i128::from(now_ns);
        for (&inode, found) in scan {
            let by_mount = mount_name(found);
            let before = self.assigned.get(&inode);
            let name = match (by_mount, before) {
                (Some(n), _) => Some(Assigned {
                    name: n,
                    by_mount: true,
                    since_ns,
                }),
                (None, _) if inode == self.own => None,
                (None, Some(a)) if !a.by_mount => Some(a.clone()),
                (None, _) => owner_name(&found.pids, proc_owner).map(|name| Assigned {
                    name,
                    by_mount: false,
                    since_ns,
                }),
            };
            if let Some(mut a) = name {
                // The same namespace as at the last scan keeps when it
                // appeared; another mount's name on its inode is another
                // namespace (one not watched: nothing held the first).
                // (A name `disambiguate` lengthened ends with the mount's.)
                match before {
                    Some(b)
                        if b.by_mount
                            && a.by_mount
                            && b.name != a.name
                            && !b.name.ends_with(&format!("/{}", a.name)) =>
                    {
                        replaced.push(inode)
                    }
                    Some(b) => {
                        a.since_ns = b.since_ns;
                        next.insert(inode, a);
                        continue;
                    }
                    None => {}
                }
                if a.by_mount
                    && let Some(made) = mount_made_ns(found, wall_minus_boot)
                {
                    a.since_ns = a.since_ns.max(made);
                }
                next.insert(inode, a);
            }
        }
        disambiguate(&mut next, scan);
        for (inode, a) in std::mem::take(&mut self.assigned) {
            if !next.contains_key(&inode) || replaced.contains(&inode) {
                self.retire(inode, a, now_ns);
            }
        }
        self.assigned = next;
        self.last_assign_ns = now_ns;
    }

    fn retire(&mut self, inode: u32, a: Assigned, gone_ns: u64) {
        if self.retired.len() >= RETIRED_MAX && !self.retired.contains_key(&inode) {
            self.retired.clear();
        }
        let v = self.retired.entry(inode).or_default();
        if v.len() >= RETIRED_PER_INODE {
            v.remove(0);
        }
        v.push(Retired {
            name: a.name,
            since_ns: a.since_ns,
            gone_ns,
        });
    }
}

/// CLOCK_REALTIME now, in nanoseconds.
fn wall_now_ns() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// When the namespace's bind mount was made, on the boot clock: the nsfs
/// inode's ctime, set when the kernel made it for the mount and kept while
/// mounted (the kernel's coarse clock: at most a tick early, never late).
fn mount_made_ns(f: &Found, wall_minus_boot: i128) -> Option<u64> {
    let m = fs::metadata(f.mounts.first()?).ok()?;
    let wall = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
    u64::try_from(wall - wall_minus_boot).ok()
}

/// The file name of the namespace's bind mount, one under /run/netns first.
fn mount_name(f: &Found) -> Option<String> {
    let m = f
        .run_netns_mount()
        .or(f.mounts.first().map(PathBuf::as_path))?;
    Some(m.file_name()?.to_string_lossy().into_owned())
}

/// Two namespaces named alike by bind mounts outside /run/netns: those
/// take their mount's full path.
fn disambiguate(names: &mut HashMap<u32, Assigned>, scan: &Scan) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for a in names.values() {
        *count.entry(a.name.as_str()).or_default() += 1;
    }
    let clashing: Vec<u32> = names
        .iter()
        .filter(|(_, a)| a.by_mount && count[a.name.as_str()] > 1)
        .map(|(i, _)| *i)
        .collect();
    for inode in clashing {
        let Some(found) = scan.get(&inode) else {
            continue;
        };
        if found.run_netns_mount().is_none()
            && let (Some(a), Some(m)) = (names.get_mut(&inode), found.mounts.first())
        {
            a.name = m.to_string_lossy().into_owned();
        }
    }
}

/// A process's start time (clock ticks since boot) and the container of
/// its cgroup, from /proc; `None` once it is gone.
fn proc_owner(pid: u32) -> Option<(u64, Option<String>)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parens);
    // starttime is field 22, the 20th after it.
    let start = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let container = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(container_from_cgroup_path);
    Some((start, container))
}

/// The name by owner of a namespace holding `pids`: the container of the
/// oldest process that is in one, else `pid:N` of the oldest; `None` when
/// none of them can be read any more.
fn owner_name(
    pids: &[u32],
    owner: impl Fn(u32) -> Option<(u64, Option<String>)>,
) -> Option<String> {
    let mut procs: Vec<(u64, u32, Option<String>)> = pids
        .iter()
        .filter_map(|&p| owner(p).map(|(start, c)| (start, p, c)))
        .collect();
    procs.sort_by_key(|(start, pid, _)| (*start, *pid));
    let oldest = procs.first()?.1;
    Some(
        procs
            .into_iter()
            .find_map(|(_, _, c)| c)
            .unwrap_or_else(|| format!("pid:{oldest}")),
    )
}

fn is_nsfs(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

#[cfg(test)]
#[path = "netns_tests.rs"]
mod tests;
