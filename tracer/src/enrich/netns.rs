//! Names of network namespaces, as created by `ip netns add NAME`.
//!
//! `ip netns` bind-mounts the namespace's nsfs file on `/run/netns/NAME`; `stat` on that path
//! then reports the namespace's inode number (the `net_ns->ns.inum` the kernel side sees).
//! [`NetnsNames`] caches inode → name and rescans the directory on a miss, or when the
//! directory changed, at most once per [`RESCAN_INTERVAL`]. Paths are those of the tracer's
//! mount namespace.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::statfs::{NSFS_MAGIC, statfs};

use crate::nsfs::{NETNS_RUN_DIR, NetnsError, OWN_NETNS, list_names};

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
}

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

fn is_nsfs(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    fn ino(path: &Path) -> u32 {
        fs::metadata(path).unwrap().ino() as u32
    }

    #[test]
    fn own_inode_matches_proc_self() {
        let names = NetnsNames::new().unwrap();
        assert_eq!(names.own_inode(), ino(Path::new("/proc/self/ns/net")));
    }

    #[test]
    fn own_namespace_without_name_is_none() {
        let tmp = TempDir::new("netns-own");
        let mut names = NetnsNames::with_dir(tmp.path(), true).unwrap();
        let own = names.own_inode();
        assert_eq!(names.name(own), None);
    }

    #[test]
    fn nsfs_files_are_named() {
        // /proc/self/ns holds (symlinks to) nsfs files, like /run/netns does.
        let mut names = NetnsNames::with_dir("/proc/self/ns", true).unwrap();
        let own = names.own_inode();
        assert_eq!(names.name(own).as_deref(), Some("net"));
    }

    #[test]
    fn plain_files_are_not_namespaces() {
        let tmp = TempDir::new("netns-plain");
        fs::write(tmp.path().join("stale"), "").unwrap();
        let mut names = NetnsNames::with_dir(tmp.path(), true).unwrap();
        assert_eq!(names.name(ino(&tmp.path().join("stale"))), None);
    }

    #[test]
    fn miss_rescans_and_deleted_names_disappear() {
        let tmp = TempDir::new("netns-rescan");
        let blue = tmp.path().join("blue");
        fs::write(&blue, "").unwrap();
        let mut names = NetnsNames::with_dir(tmp.path(), false).unwrap();
        names.rescan_interval = Duration::ZERO;
        assert_eq!(names.name(ino(&blue)).as_deref(), Some("blue"));

        let red = tmp.path().join("red");
        fs::write(&red, "").unwrap();
        assert_eq!(names.name(ino(&red)).as_deref(), Some("red"));

        let blue_ino = ino(&blue);
        fs::remove_file(&blue).unwrap();
        names.rescan(Instant::now());
        assert_eq!(names.name(blue_ino), None);
    }

    #[test]
    fn rescans_are_rate_limited() {
        let tmp = TempDir::new("netns-rate");
        let mut names = NetnsNames::with_dir(tmp.path(), false).unwrap();
        names.rescan_interval = Duration::from_secs(3600);
        assert_eq!(names.name(1), None); // first lookup scans
        let late = tmp.path().join("late");
        fs::write(&late, "").unwrap();
        assert_eq!(names.name(ino(&late)), None, "rescanned too early");

        let t0 = Instant::now();
        names.last_scan = Some(t0);
        names.rescan_interval = RESCAN_INTERVAL;
        assert!(!names.rescan_due(t0 + Duration::from_millis(199)));
        assert!(names.rescan_due(t0 + RESCAN_INTERVAL));
    }

    #[test]
    fn missing_directory_has_no_names() {
        let mut names = NetnsNames::with_dir("/nonexistent/netns", true).unwrap();
        assert_eq!(names.name(names.own_inode()), None);
    }
}
