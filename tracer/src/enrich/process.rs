//! Process metadata that outlives the process.
//!
//! Route changes are often made by short-lived commands (`ip route add …`) that have exited by
//! the time userspace handles the event, so `/proc/<pid>` alone is not enough. Like kunai,
//! [`ProcessCache`] snapshots every process at start-up, records the executable of each exec
//! seen by the kernel side, and keeps the entries of exited processes for a while.
//!
//! The name (`comm`), pids and uid of an event come from the kernel with the event; what this
//! cache adds is the executable. Live `/proc` data is always preferred: `/proc/<pid>/exe` of a
//! running process, else the last exec noted for the pid, else the snapshot taken at start-up.
//! Processes that vanish in the middle of a read count as absent.
//!
//! The map is bounded: a sweep runs when it grows past its capacity or past twice the size the
//! previous sweep left, whichever is larger. A sweep drops the entries of processes that exited
//! more than the retention period ago, then, if still over capacity, the longest-exited ones.
//! Entries of live processes are never dropped, so the map holds at most about twice the
//! capacity or twice the number of live processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use procfs::process::Process;

/// Default number of entries above which exited processes are evicted.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// Default time an exited process stays answerable (unless the map is over capacity).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(60);

/// Failure to build the initial snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// `/proc` could not be listed.
    #[error("cannot list processes in /proc (is procfs mounted?): {0}")]
    ListProcesses(#[source] procfs::ProcError),
}

#[derive(Debug, Default)]
struct Entry {
    /// Target of `/proc/<pid>/exe` when the process was last seen alive.
    seen_exe: Option<String>,
    /// The file of the last exec noted for this pid, with symlinks resolved
    /// as `/proc/<pid>/exe` names it, so that a process reports one exe
    /// whether or not it is still alive.
    exec_exe: Option<String>,
    /// When the process was first found gone.
    gone_since: Option<Instant>,
}

/// The executables of processes by pid, also of exited ones.
#[derive(Debug)]
pub struct ProcessCache {
    entries: HashMap<u32, Entry>,
    capacity: usize,
    retention: Duration,
    /// Size at which the next eviction sweep runs (≥ `capacity`).
    sweep_at: usize,
    /// When the last sweep ran: one runs at least every half `retention`,
    /// so the map holds about the processes of the last minute, not
    /// `capacity` of them (soak finding 10: on a host that starts 60
    /// processes a second, the map reached 16,384 entries after about 5
    /// minutes, its table doubling on the way; about 4 MiB kept since).
    last_sweep: Instant,
}

impl ProcessCache {
    /// Snapshots every process in `/proc` with the default limits.
    pub fn seed() -> Result<Self, ProcessError> {
        Self::seed_with_limits(DEFAULT_CAPACITY, DEFAULT_RETENTION)
    }

    /// Snapshots every process in `/proc`; exited processes are evicted once the cache holds
    /// more than `capacity` entries, first those gone for longer than `retention`.
    pub fn seed_with_limits(capacity: usize, retention: Duration) -> Result<Self, ProcessError> {
        let mut cache = Self::empty(capacity, retention);
        let processes = procfs::process::all_processes().map_err(ProcessError::ListProcesses)?;
        for process in processes.flatten() {
            let Ok(pid) = u32::try_from(process.pid) else {
                continue;
            };
            cache.entries.insert(
                pid,
                Entry {
                    seen_exe: exe_of(&process),
                    ..Entry::default()
                },
            );
        }
        cache.sweep_at = cache.capacity.max(cache.entries.len().saturating_mul(2));
        log::debug!(
            "process cache seeded with {} processes",
            cache.entries.len()
        );
        Ok(cache)
    }

    fn empty(capacity: usize, retention: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            retention,
            sweep_at: capacity,
            last_sweep: Instant::now(),
        }
    }

    /// Records that `pid` executed `filename` (from an exec event), and snapshots the process
    /// if it is still alive.
    pub fn note_exec(&mut self, pid: u32, filename: String) {
        let live = open(pid);
        let entry = self.entries.entry(pid).or_default();
        entry.exec_exe = Some(
            std::fs::canonicalize(&filename)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or(filename),
        );
        match live {
            Some(process) => {
                entry.seen_exe = exe_of(&process);
                entry.gone_since = None;
            }
            None => {
                entry.gone_since.get_or_insert_with(Instant::now);
            }
        }
        self.maybe_evict(Instant::now());
    }

    /// The executable of `pid`: the `/proc/<pid>/exe` link if the process is alive, else the
    /// file of its last noted exec, else the executable seen in an earlier snapshot.
    pub fn exe(&mut self, pid: u32) -> Option<String> {
        match open(pid) {
            Some(process) => {
                if let Some(exe) = exe_of(&process) {
                    return Some(exe);
                }
            }
            None => self.mark_gone(pid),
        }
        let entry = self.entries.get(&pid)?;
        entry.exec_exe.clone().or_else(|| entry.seen_exe.clone())
    }

    fn mark_gone(&mut self, pid: u32) {
        if let Some(entry) = self.entries.get_mut(&pid) {
            entry.gone_since.get_or_insert_with(Instant::now);
        }
    }

    fn maybe_evict(&mut self, now: Instant) {
        if self.entries.len() > self.sweep_at
            || now.saturating_duration_since(self.last_sweep) >= self.retention / 2
        {
            self.sweep(now);
        }
    }

    /// Drops exited processes: those gone for longer than the retention period, then the
    /// longest-gone ones until the map is back within capacity.
    fn sweep(&mut self, now: Instant) {
        for (&pid, entry) in &mut self.entries {
            if entry.gone_since.is_none() && open(pid).is_none() {
                entry.gone_since = Some(now);
            }
        }
        let retention = self.retention;
        self.entries.retain(|_, e| {
            e.gone_since
                .is_none_or(|t| now.saturating_duration_since(t) <= retention)
        });
        if self.entries.len() > self.capacity {
            let mut gone: Vec<(Instant, u32)> = self
                .entries
                .iter()
                .filter_map(|(&pid, e)| Some((e.gone_since?, pid)))
                .collect();
            gone.sort_unstable();
            let excess = self.entries.len() - self.capacity;
            for (_, pid) in gone.into_iter().take(excess) {
                self.entries.remove(&pid);
            }
        }
        // Live processes may alone exceed the capacity: sweep again only after real growth.
        self.sweep_at = self.capacity.max(self.entries.len().saturating_mul(2));
        // A burst of processes gone: the table need not stay its size.
        let len = self.entries.len();
        if self.entries.capacity() > 4 * len.max(1024) {
            self.entries.shrink_to(2 * len);
        }
        self.last_sweep = now;
    }
}

/// Opens `/proc/<pid>`; `None` if the process does not exist (any more).
fn open(pid: u32) -> Option<Process> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)?;
    Process::new(pid).ok()
}

/// The target of the process's `exe` link, read through its `/proc/<pid>` directory handle
/// (so a reused pid fails rather than describes another process).
fn exe_of(process: &Process) -> Option<String> {
    process.exe().ok().map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Pids the kernel never hands out (above the 2^22 limit of `pid_max`).
    const FAKE_PID: u32 = 1 << 23;

    fn own_pid() -> u32 {
        std::process::id()
    }

    fn current_exe() -> String {
        std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn seed_finds_own_process() {
        let mut cache = ProcessCache::seed().unwrap();
        let entry = cache.entries.get(&own_pid()).expect("own pid seeded");
        assert_eq!(entry.seen_exe.as_deref(), Some(current_exe().as_str()));
        assert_eq!(cache.exe(own_pid()), Some(current_exe()));
    }

    #[test]
    fn exited_process_stays_answerable() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        // Seeded while the child runs: its snapshot is all that remains.
        let mut cache = ProcessCache::seed().unwrap();
        let exe = cache.exe(pid).expect("live child");
        assert!(exe.ends_with("/sleep"), "{exe}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(cache.exe(pid), Some(exe));
        assert!(cache.entries[&pid].gone_since.is_some());
    }

    #[test]
    fn exec_noted_for_vanished_process() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        cache.note_exec(FAKE_PID, "/no/such/binary".to_owned());
        assert_eq!(cache.exe(FAKE_PID).as_deref(), Some("/no/such/binary"));
        assert!(cache.entries[&FAKE_PID].gone_since.is_some());
        assert_eq!(cache.exe(FAKE_PID + 1), None);
    }

    #[test]
    fn exec_through_a_symlink_reports_the_target_like_proc_does() {
        // Debian's /usr/sbin/ip -> /bin/ip: a live process's /proc/<pid>/exe
        // names the target, so a gone one must too.
        let dir = crate::test_util::TempDir::new("exe-link");
        let target = dir.path().join("real-ip");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("ip");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        cache.note_exec(FAKE_PID, link.to_string_lossy().into_owned());
        let want = std::fs::canonicalize(&target).unwrap();
        assert_eq!(
            cache.exe(FAKE_PID),
            Some(want.to_string_lossy().into_owned())
        );
    }

    #[test]
    fn exec_after_snapshot_wins_once_gone() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        cache.entries.insert(
            FAKE_PID,
            Entry {
                seen_exe: Some("/usr/bin/bash".to_owned()),
                ..Entry::default()
            },
        );
        cache.note_exec(FAKE_PID, "/usr/lib/very-long-helper-name".to_owned());
        assert_eq!(
            cache.exe(FAKE_PID).as_deref(),
            Some("/usr/lib/very-long-helper-name")
        );
    }

    #[test]
    fn live_exec_is_snapshotted() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        cache.note_exec(own_pid(), "/some/script".to_owned());
        assert_eq!(
            cache.entries[&own_pid()].seen_exe.as_deref(),
            Some(current_exe().as_str())
        );
        // Alive: /proc wins over the noted file name.
        assert_eq!(cache.exe(own_pid()), Some(current_exe()));
    }

    #[test]
    fn odd_pids_are_absent() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        for pid in [0, FAKE_PID, u32::MAX] {
            assert_eq!(cache.exe(pid), None);
        }
    }

    #[test]
    fn map_stays_bounded() {
        let mut cache = ProcessCache::empty(8, Duration::from_secs(3600));
        cache.note_exec(own_pid(), "/self".to_owned());
        for i in 0..100 {
            cache.note_exec(FAKE_PID + i, format!("/bin/p{i}"));
            assert!(cache.entries.len() <= 16, "{} entries", cache.entries.len());
        }
        // The live process survives; the most recently exited ones are still answerable.
        assert!(cache.entries.contains_key(&own_pid()));
        assert_eq!(cache.exe(FAKE_PID + 99).as_deref(), Some("/bin/p99"));
    }

    #[test]
    fn exited_processes_are_swept_by_time_not_only_by_size() {
        // Soak finding 10: below `capacity`, nothing was ever dropped.
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, Duration::from_secs(60));
        let now = Instant::now();
        let Some(start) = now.checked_sub(Duration::from_secs(200)) else {
            return;
        };
        cache.last_sweep = start;
        for i in 0..5000 {
            cache.entries.insert(
                FAKE_PID + i,
                Entry {
                    gone_since: Some(start),
                    ..Entry::default()
                },
            );
        }
        let table = cache.entries.capacity();
        cache.maybe_evict(start + Duration::from_secs(29));
        assert_eq!(cache.entries.len(), 5000, "not due yet");
        cache.maybe_evict(now);
        assert!(cache.entries.is_empty());
        assert!(cache.entries.capacity() < table, "the table shrinks");
        assert_eq!(cache.last_sweep, now);
    }

    #[test]
    fn sweep_drops_only_long_exited() {
        let mut cache = ProcessCache::empty(10, Duration::from_secs(60));
        let now = Instant::now();
        let old = now.checked_sub(Duration::from_secs(120)).unwrap_or(now);
        let recent = Entry {
            gone_since: Some(now),
            ..Entry::default()
        };
        let long_ago = Entry {
            gone_since: Some(old),
            ..Entry::default()
        };
        cache.entries.insert(FAKE_PID, recent);
        cache.entries.insert(FAKE_PID + 1, long_ago);
        cache.entries.insert(own_pid(), Entry::default());
        cache.sweep(now);
        assert!(cache.entries.contains_key(&FAKE_PID));
        assert!(cache.entries.contains_key(&own_pid()));
        assert_eq!(cache.entries.contains_key(&(FAKE_PID + 1)), old == now);
    }
}
