//! Resolving cgroup v2 ids to cgroup paths.
//!
//! `bpf_get_current_cgroup_id()` returns the kernfs node id of the task's cgroup v2, which is
//! the inode number of that cgroup's directory under the cgroup2 mount. The resolver walks the
//! mounted hierarchy (lazily, on the first lookup and then on misses, at most once per
//! [`RESCAN_INTERVAL`]) and remembers the inode → path mapping. Entries of cgroups removed since
//! a scan are kept, so short-lived cgroups seen once stay resolvable; the map is rebuilt from
//! scratch when it outgrows [`MAX_ENTRIES`].

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use super::unit::unit_from_cgroup_path;

/// Minimum time between two scans of the hierarchy triggered by unknown ids.
pub const RESCAN_INTERVAL: Duration = Duration::from_millis(200);

/// Size above which the cache forgets removed cgroups.
pub const MAX_ENTRIES: usize = 1 << 16;

/// Failure to locate the cgroup v2 hierarchy.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/self/mountinfo` could not be read or parsed.
    #[error("cannot read /proc/self/mountinfo to find the cgroup2 mount: {0}")]
    MountInfo(#[source] procfs::ProcError),
    /// No cgroup2 file system is mounted in the tracer's mount namespace.
    #[error(
        "no cgroup2 file system is mounted (none listed in /proc/self/mountinfo); \
         cgroup ids cannot be resolved to paths"
    )]
    NoCgroup2Mount,
}

/// Maps cgroup v2 ids to paths such as `/system.slice/systemd-networkd.service`.
#[derive(Debug)]
pub struct CgroupResolver {
    /// Where the cgroup2 file system is mounted (typically `/sys/fs/cgroup`).
    mount_point: PathBuf,
    /// Path of the mount's root directory in the hierarchy (`/` unless a subtree is mounted).
    mount_root: String,
    paths: HashMap<u64, String>,
    last_scan: Option<Instant>,
    rescan_interval: Duration,
}

impl CgroupResolver {
    /// Finds the cgroup2 mount in `/proc/self/mountinfo`, preferring `/sys/fs/cgroup` and
    /// mounts of the hierarchy's root. Nothing is scanned until the first lookup.
    pub fn new() -> Result<Self, CgroupError> {
        let mounts = procfs::process::Process::myself()
            .and_then(|me| me.mountinfo())
            .map_err(CgroupError::MountInfo)?;
        let best = mounts
            .into_iter()
            .filter(|m| m.fs_type == "cgroup2")
            .min_by_key(|m| (m.mount_point != Path::new("/sys/fs/cgroup"), m.root != "/"))
            .ok_or(CgroupError::NoCgroup2Mount)?;
        let mut resolver = Self::with_mount(best.mount_point);
        resolver.mount_root = best.root;
        Ok(resolver)
    }

    /// A resolver for a cgroup2 hierarchy mounted (from its root) at `mount_point`.
    pub fn with_mount(mount_point: impl Into<PathBuf>) -> Self {
        Self {
            mount_point: mount_point.into(),
            mount_root: "/".to_owned(),
            paths: HashMap::new(),
            last_scan: None,
            rescan_interval: RESCAN_INTERVAL,
        }
    }

    /// Where the cgroup2 file system is mounted.
    #[cfg(test)]
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The path of cgroup `id` relative to the hierarchy's root (`/` for the root cgroup), as
    /// `/proc/<pid>/cgroup` shows it. `None` if the id is unknown even after a rescan (or if a
    /// rescan happened less than [`RESCAN_INTERVAL`] ago).
    pub fn resolve(&mut self, id: u64) -> Option<String> {
        if let Some(path) = self.paths.get(&id) {
            return Some(path.clone());
        }
        if !self.rescan_due(Instant::now()) {
            return None;
        }
        self.rescan();
        self.paths.get(&id).cloned()
    }

    /// The unit or container owning cgroup `id`: [`unit_from_cgroup_path`] of its path.
    pub fn unit(&mut self, id: u64) -> Option<String> {
        unit_from_cgroup_path(&self.resolve(id)?)
    }

    fn rescan_due(&self, now: Instant) -> bool {
        self.last_scan
            .is_none_or(|last| now.saturating_duration_since(last) >= self.rescan_interval)
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        let found = self.walk();
        log::debug!(
            "scanned {} cgroups under {}",
            found.len(),
            self.mount_point.display()
        );
        if self.paths.len() + found.len() > MAX_ENTRIES {
            self.paths.clear();
        }
        self.paths.extend(found);
    }

    /// Walks the hierarchy; directories that vanish during the walk are skipped.
    fn walk(&self) -> Vec<(u64, String)> {
        let mut found = Vec::new();
        match fs::metadata(&self.mount_point) {
            Ok(meta) => found.push((meta.ino(), self.mount_root.clone())),
            Err(err) => {
                log::warn!(
                    "cannot stat cgroup2 mount {}: {err}",
                    self.mount_point.display()
                );
                return found;
            }
        }
        let mut pending = vec![(self.mount_point.clone(), self.mount_root.clone())];
        while let Some((dir, cgroup)) = pending.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) || found.len() >= MAX_ENTRIES {
                    continue;
                }
                let name = entry.file_name();
                let child = join_cgroup(&cgroup, &name.to_string_lossy());
                // On kernfs, d_ino is the inode number, i.e. the cgroup id: no stat needed.
                found.push((entry.ino(), child.clone()));
                pending.push((entry.path(), child));
            }
        }
        found
    }
}

fn join_cgroup(parent: &str, name: &str) -> String {
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    fn ino(path: &Path) -> u64 {
        fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn resolves_own_cgroup() {
        let mut resolver = CgroupResolver::new().expect("a cgroup2 mount on this machine");
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line in /proc/self/cgroup");
        let dir = resolver.mount_point().join(path.trim_start_matches('/'));
        assert_eq!(resolver.resolve(ino(&dir)).as_deref(), Some(path));
    }

    #[test]
    fn resolves_nested_directories_and_root() {
        let tmp = TempDir::new("cgroup-nested");
        let unit = tmp.path().join("system.slice/systemd-networkd.service");
        fs::create_dir_all(&unit).unwrap();
        fs::write(tmp.path().join("cgroup.procs"), "").unwrap();
        let mut resolver = CgroupResolver::with_mount(tmp.path());
        assert_eq!(
            resolver.resolve(ino(&unit)).as_deref(),
            Some("/system.slice/systemd-networkd.service"),
        );
        assert_eq!(resolver.resolve(ino(tmp.path())).as_deref(), Some("/"));
        assert_eq!(
            resolver.unit(ino(&unit)).as_deref(),
            Some("systemd-networkd.service"),
        );
        // Files are not cgroups.
        let file = ino(&tmp.path().join("cgroup.procs"));
        assert_eq!(resolver.resolve(file), None);
    }

    #[test]
    fn mount_root_prefixes_paths() {
        let tmp = TempDir::new("cgroup-root");
        fs::create_dir(tmp.path().join("child")).unwrap();
        let mut resolver = CgroupResolver::with_mount(tmp.path());
        resolver.mount_root = "/lxc.payload.c1".to_owned();
        assert_eq!(
            resolver.resolve(ino(&tmp.path().join("child"))).as_deref(),
            Some("/lxc.payload.c1/child"),
        );
    }

    #[test]
    fn miss_rescans_and_keeps_removed_cgroups() {
        let tmp = TempDir::new("cgroup-rescan");
        let first = tmp.path().join("a.scope");
        fs::create_dir(&first).unwrap();
        let mut resolver = CgroupResolver::with_mount(tmp.path());
        resolver.rescan_interval = Duration::ZERO;
        let first_id = ino(&first);
        assert_eq!(resolver.resolve(first_id).as_deref(), Some("/a.scope"));

        let second = tmp.path().join("b.scope");
        fs::create_dir(&second).unwrap();
        assert_eq!(resolver.resolve(ino(&second)).as_deref(), Some("/b.scope"));

        fs::remove_dir(&first).unwrap();
        resolver.rescan();
        assert_eq!(resolver.resolve(first_id).as_deref(), Some("/a.scope"));
    }

    #[test]
    fn rescans_are_rate_limited() {
        let tmp = TempDir::new("cgroup-rate");
        let mut resolver = CgroupResolver::with_mount(tmp.path());
        resolver.rescan_interval = Duration::from_secs(3600);
        assert_eq!(resolver.resolve(u64::MAX), None); // first lookup scans
        let late = tmp.path().join("late.service");
        fs::create_dir(&late).unwrap();
        assert_eq!(resolver.resolve(ino(&late)), None, "rescanned too early");

        let mut resolver = CgroupResolver::with_mount(tmp.path());
        let t0 = Instant::now();
        assert!(resolver.rescan_due(t0));
        resolver.last_scan = Some(t0);
        assert!(!resolver.rescan_due(t0 + Duration::from_millis(199)));
        assert!(resolver.rescan_due(t0 + RESCAN_INTERVAL));
    }

    #[test]
    fn missing_mount_resolves_nothing() {
        let mut resolver = CgroupResolver::with_mount("/nonexistent/cgroup2");
        assert_eq!(resolver.resolve(1), None);
    }
}
