//! Process metadata that outlives the process.
//!
//! Route changes are often made by short-lived commands (`ip route add …`) that have exited by
//! the time userspace handles the event, so `/proc/<pid>` alone is not enough. Like kunai,
//! [`ProcessCache`] snapshots every process at start-up, records the executable of each exec
//! seen by the kernel side, and keeps the entries of exited processes for a while.
//!
//! Live `/proc` data is always preferred: a lookup re-reads `/proc/<pid>/stat` and uses the
//! cached entry only if the start time matches (otherwise the pid was reused) and no exec was
//! noted since it was read. Processes that vanish in the middle of a read count as absent.
//!
//! The map is bounded: a sweep runs when it grows past its capacity or past twice the size the
//! previous sweep left, whichever is larger. A sweep drops the entries of processes that exited
//! more than the retention period ago, then, if still over capacity, the longest-exited ones.
//! Entries of live processes are never dropped, so the map holds at most about twice the
//! capacity or twice the number of live processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use procfs::process::{Process, Stat};
use serde::Serialize;

/// Default number of entries above which exited processes are evicted.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// Default time an exited process stays answerable (unless the map is over capacity).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(60);

/// Kernel `TASK_COMM_LEN` minus the terminating NUL.
const COMM_MAX: usize = 15;

/// Failure to build the initial snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// `/proc` could not be listed.
    #[error("cannot list processes in /proc (is procfs mounted?): {0}")]
    ListProcesses(#[source] procfs::ProcError),
}

/// What is known about a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcInfo {
    pub pid: u32,
    /// Parent pid (0 for the idle task's children, `init` and kthreadd).
    pub ppid: u32,
    /// Kernel command name (at most 15 bytes, unescaped).
    pub comm: String,
    /// Target of `/proc/<pid>/exe` (`None` for kernel threads, zombies or when unreadable).
    pub exe: Option<String>,
    /// Real user id.
    pub uid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
}

#[derive(Debug, Default)]
struct Entry {
    info: Option<ProcInfo>,
    /// File name of the last exec noted for this pid, as executed (its
    /// basename is what the kernel makes the comm).
    exec_filename: Option<String>,
    /// The same file with symlinks resolved, as `/proc/<pid>/exe` names it,
    /// so that a process reports one exe whether or not it is still alive.
    exec_exe: Option<String>,
    /// An exec was noted after `info` was read: `comm` and `exe` may be outdated.
    exec_after_info: bool,
    /// When the process was first found gone.
    gone_since: Option<Instant>,
}

/// Cache of [`ProcInfo`] by pid.
#[derive(Debug)]
pub struct ProcessCache {
    entries: HashMap<u32, Entry>,
    capacity: usize,
    retention: Duration,
    /// Size at which the next eviction sweep runs (≥ `capacity`).
    sweep_at: usize,
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
            let Ok(stat) = process.stat() else { continue };
            if let Some(info) = read_info(&process, stat) {
                cache.entries.insert(
                    info.pid,
                    Entry {
                        info: Some(info),
                        ..Entry::default()
                    },
                );
            }
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
        }
    }

    /// Number of cached pids (live and exited).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `pid` executed `filename` (from an exec event), and snapshots the process
    /// if it is still alive.
    pub fn note_exec(&mut self, pid: u32, filename: String) {
        let live = open(pid).and_then(|(process, stat)| read_info(&process, stat));
        let entry = self.entries.entry(pid).or_default();
        entry.exec_exe = Some(
            std::fs::canonicalize(&filename)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| filename.clone()),
        );
        entry.exec_filename = Some(filename);
        match live {
            Some(info) => {
                entry.info = Some(info);
                entry.exec_after_info = false;
                entry.gone_since = None;
            }
            None => {
                entry.exec_after_info = entry.info.is_some();
                entry.gone_since.get_or_insert_with(Instant::now);
            }
        }
        self.maybe_evict();
    }

    /// What is known about `pid`: live `/proc` data if the process exists, otherwise the
    /// cached snapshot. For an exited process whose exec was noted after the snapshot, `comm`
    /// and `exe` are derived from the exec'd file name as the kernel would.
    pub fn lookup(&mut self, pid: u32) -> Option<ProcInfo> {
        if let Some((process, stat)) = open(pid) {
            if let Some(info) = self.refresh_cached(pid, &stat) {
                return Some(info);
            }
            if let Some(info) = read_info(&process, stat) {
                self.store(info.clone());
                return Some(info);
            }
        }
        self.mark_gone(pid);
        let entry = self.entries.get(&pid)?;
        let mut info = entry.info.clone()?;
        if entry.exec_after_info
            && let Some(filename) = &entry.exec_filename
        {
            info.comm = comm_from_filename(filename);
            info.exe = entry.exec_exe.clone();
        }
        Some(info)
    }

    /// The executable of `pid`: the `/proc/<pid>/exe` link if the process is alive, else the
    /// file name of its last noted exec, else the executable seen in an earlier snapshot.
    pub fn exe(&mut self, pid: u32) -> Option<String> {
        match open(pid) {
            Some((process, _)) => {
                if let Ok(exe) = process.exe() {
                    return Some(exe.to_string_lossy().into_owned());
                }
            }
            None => self.mark_gone(pid),
        }
        let entry = self.entries.get(&pid)?;
        entry
            .exec_exe
            .clone()
            .or_else(|| entry.info.as_ref()?.exe.clone())
    }

    /// The cached entry of a live process, updated from `stat`, if it is still current.
    fn refresh_cached(&mut self, pid: u32, stat: &Stat) -> Option<ProcInfo> {
        let entry = self.entries.get_mut(&pid)?;
        let info = entry.info.as_mut()?;
        if entry.exec_after_info || info.start_time != stat.starttime {
            return None;
        }
        entry.gone_since = None;
        // Both change without exec: prctl(PR_SET_NAME), reparenting when the parent exits.
        info.comm.clone_from(&stat.comm);
        info.ppid = u32::try_from(stat.ppid).unwrap_or(0);
        Some(info.clone())
    }

    /// Stores a fresh snapshot; a different start time means the pid was reused, and the
    /// exec noted for the previous process no longer applies.
    fn store(&mut self, info: ProcInfo) {
        let entry = self.entries.entry(info.pid).or_default();
        let same_process = entry
            .info
            .as_ref()
            .is_some_and(|old| old.start_time == info.start_time);
        if !same_process {
            entry.exec_filename = None;
            entry.exec_exe = None;
        }
        entry.info = Some(info);
        entry.exec_after_info = false;
        entry.gone_since = None;
        self.maybe_evict();
    }

    fn mark_gone(&mut self, pid: u32) {
        if let Some(entry) = self.entries.get_mut(&pid) {
            entry.gone_since.get_or_insert_with(Instant::now);
        }
    }

    fn maybe_evict(&mut self) {
        if self.entries.len() > self.sweep_at {
            self.sweep(Instant::now());
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
    }
}

/// Opens `/proc/<pid>` and reads its `stat`; `None` if the process does not exist (any more).
fn open(pid: u32) -> Option<(Process, Stat)> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0)?;
    let process = Process::new(pid).ok()?;
    let stat = process.stat().ok()?;
    Some((process, stat))
}

/// Completes `stat` with the uid and executable. Reads go through the `/proc/<pid>` directory
/// handle, so they fail rather than describe another process if the pid is reused meanwhile.
fn read_info(process: &Process, stat: Stat) -> Option<ProcInfo> {
    let uid = process.status().ok()?.ruid;
    let exe = process.exe().ok().map(|p| p.to_string_lossy().into_owned());
    Some(ProcInfo {
        pid: u32::try_from(stat.pid).ok()?,
        ppid: u32::try_from(stat.ppid).unwrap_or(0),
        comm: stat.comm,
        exe,
        uid,
        start_time: stat.starttime,
    })
}

/// The `comm` the kernel gives a process after exec: the file name's last component,
/// truncated to 15 bytes (on a character boundary here).
fn comm_from_filename(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename);
    let mut end = base.len().min(COMM_MAX);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    base[..end].to_owned()
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
        let info = entry.info.clone().unwrap();
        assert_eq!(info.pid, own_pid());
        assert_eq!(info.exe.as_deref(), Some(current_exe().as_str()));
        assert_eq!(info.ppid, std::os::unix::process::parent_id());
        assert_eq!(info.uid, nix::unistd::getuid().as_raw());
        assert_eq!(cache.lookup(own_pid()), Some(info));
        assert_eq!(cache.exe(own_pid()), Some(current_exe()));
    }

    #[test]
    fn exited_process_stays_answerable() {
        let mut cache = ProcessCache::seed().unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let live = cache.lookup(pid).expect("live child");
        assert_eq!(live.comm, "sleep");
        assert_eq!(live.ppid, own_pid());
        let exe = live.exe.clone().expect("child exe");

        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(cache.lookup(pid), Some(live));
        assert_eq!(cache.exe(pid), Some(exe));
        assert!(cache.entries[&pid].gone_since.is_some());
    }

    #[test]
    fn exec_noted_for_vanished_process() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        cache.note_exec(FAKE_PID, "/no/such/binary".to_owned());
        assert_eq!(cache.exe(FAKE_PID).as_deref(), Some("/no/such/binary"));
        // Nothing but the file name is known: no full record.
        assert_eq!(cache.lookup(FAKE_PID), None);
        assert_eq!(cache.exe(FAKE_PID + 1), None);
    }

    #[test]
    fn exec_through_a_symlink_reports_the_target_like_proc_does() {
        // Debian's /usr/sbin/ip -> /bin/ip: a live process's /proc/<pid>/exe
        // names the target, so a gone one must too.
        let dir = super::super::test_util::TempDir::new("exe-link");
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
    fn exec_after_snapshot_updates_comm_and_exe() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        let before = ProcInfo {
            pid: FAKE_PID,
            ppid: 1,
            comm: "bash".to_owned(),
            exe: Some("/usr/bin/bash".to_owned()),
            uid: 1000,
            start_time: 42,
        };
        cache.entries.insert(
            FAKE_PID,
            Entry {
                info: Some(before.clone()),
                ..Entry::default()
            },
        );
        cache.note_exec(FAKE_PID, "/usr/lib/very-long-helper-name".to_owned());
        let after = cache.lookup(FAKE_PID).unwrap();
        assert_eq!(after.comm, "very-long-helpe");
        assert_eq!(after.exe.as_deref(), Some("/usr/lib/very-long-helper-name"));
        assert_eq!((after.ppid, after.uid, after.start_time), (1, 1000, 42));
    }

    #[test]
    fn live_exec_is_snapshotted() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        cache.note_exec(own_pid(), "/some/script".to_owned());
        assert_eq!(
            cache.entries[&own_pid()].info.as_ref().unwrap().pid,
            own_pid()
        );
        // Alive: /proc wins over the noted file name.
        assert_eq!(cache.exe(own_pid()), Some(current_exe()));
    }

    #[test]
    fn pid_reuse_is_detected_by_start_time() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        let stale = ProcInfo {
            pid: own_pid(),
            ppid: 1,
            comm: "previous".to_owned(),
            exe: Some("/old/binary".to_owned()),
            uid: 4242,
            start_time: u64::MAX,
        };
        let entry = Entry {
            info: Some(stale),
            exec_filename: Some("/old/binary".to_owned()),
            ..Entry::default()
        };
        cache.entries.insert(own_pid(), entry);
        let info = cache.lookup(own_pid()).unwrap();
        assert_ne!(info.start_time, u64::MAX);
        assert_eq!(info.exe, Some(current_exe()));
        assert_eq!(cache.entries[&own_pid()].exec_filename, None);
    }

    #[test]
    fn odd_pids_are_absent() {
        let mut cache = ProcessCache::empty(DEFAULT_CAPACITY, DEFAULT_RETENTION);
        for pid in [0, FAKE_PID, u32::MAX] {
            assert_eq!(cache.lookup(pid), None);
            assert_eq!(cache.exe(pid), None);
        }
    }

    #[test]
    fn map_stays_bounded() {
        let mut cache = ProcessCache::empty(8, Duration::from_secs(3600));
        cache.note_exec(own_pid(), "/self".to_owned());
        for i in 0..100 {
            cache.note_exec(FAKE_PID + i, format!("/bin/p{i}"));
            assert!(cache.len() <= 16, "{} entries", cache.len());
        }
        // The live process survives; the most recently exited ones are still answerable.
        assert!(cache.entries.contains_key(&own_pid()));
        assert_eq!(cache.exe(FAKE_PID + 99).as_deref(), Some("/bin/p99"));
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

    #[test]
    fn comm_from_filename_mimics_kernel() {
        assert_eq!(comm_from_filename("/usr/sbin/ip"), "ip");
        assert_eq!(comm_from_filename("ip"), "ip");
        assert_eq!(
            comm_from_filename("/opt/0123456789abcdefgh"),
            "0123456789abcde"
        );
        // 2 + 7 × 2 bytes: the 15-byte cut would split the last character.
        assert_eq!(comm_from_filename("/x/aaééééééé"), "aaéééééé");
    }
}
