//! Finding every network namespace on the host, named or not: those of
//! running processes (`/proc/PID/ns/net`) and those bind-mounted anywhere
//! (nsfs entries of `/proc/self/mountinfo`: /run/netns, /run/docker/netns,
//! any other directory). A namespace neither holds is gone for the tracer
//! too (it lets go of its sockets, which would otherwise keep it alive).
//!
//! One scan reads one link per process, and the mount table when it
//! changed: a few milliseconds for a few hundred processes, on a thread of
//! its own (BENCHMARKS.md).
use std::{
    collections::BTreeMap,
    fs::{self, File},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::mpsc::RecvTimeoutError,
    time::Duration,
};

use tokio::sync::mpsc::error::TrySendError;

use super::{holders::Holders, task::Task};
use crate::nsfs::{NETNS_RUN_DIR, NetMounts, NsMount};

/// What holds one namespace: its bind mounts and its processes (by pid,
/// ascending).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub mounts: Vec<PathBuf>,
    pub pids: Vec<u32>,
    /// With processes and no bind mount (and not the tracer's own
    /// namespace): the newest of them as /proc showed it
    /// (`collect::holders`), the one whose exit may end it.
    pub newest: Option<Task>,
}

/// The namespaces found, by inode.
pub type Scan = BTreeMap<u32, Found>;

/// Scans processes and mounts now. A mount table that cannot be read
/// leaves only the processes' namespaces (logged).
pub fn scan(mounts: &mut NetMounts) -> Scan {
    let mounts = mounts.read().map(<[NsMount]>::to_vec).unwrap_or_else(|e| {
        log::warn!("reading /proc/self/mountinfo for namespace bind mounts: {e}");
        Vec::new()
    });
    combine(mounts, process_namespaces())
}

/// Scans every `interval`, and at once when poked, on a thread of its own
/// (reading /proc can stall for a moment while mounts change: the event
/// loop must not), and sends each scan to `tx`. A scan the receiver has
/// no room for is dropped: the next one supersedes it.
pub struct Scanner {
    poke: std::sync::mpsc::SyncSender<()>,
}

impl Scanner {
    pub fn spawn(interval: Duration, tx: tokio::sync::mpsc::Sender<Scan>) -> std::io::Result<Self> {
        let (poke, poked) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("netns-scan".into())
            .spawn(move || {
                let mut mounts = NetMounts::new();
                let mut holders = Holders::default();
                let own = fs::metadata(crate::nsfs::OWN_NETNS).map_or(0, |m| m.ino() as u32);
                loop {
                    match poked.recv_timeout(interval) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let mut s = scan(&mut mounts);
                    holders.fill(&mut s, own);
                    if let Err(TrySendError::Closed(_)) = tx.try_send(s) {
                        return;
                    }
                }
            })?;
        Ok(Scanner { poke })
    }

    /// Scan now (a change came from a namespace not watched yet).
    pub fn poke(&self) {
        let _ = self.poke.try_send(());
    }
}

/// Mounts and (pid, inode) pairs into one map.
pub fn combine(mounts: Vec<NsMount>, procs: Vec<(u32, u32)>) -> Scan {
    let mut out = Scan::new();
    for m in mounts {
        let f = out.entry(m.inode).or_default();
        if !f.mounts.contains(&m.path) {
            f.mounts.push(m.path);
        }
    }
    for (pid, inode) in procs {
        out.entry(inode).or_default().pids.push(pid);
    }
    for f in out.values_mut() {
        f.pids.sort_unstable();
        f.mounts.sort();
    }
    out
}

/// (pid, namespace inode) of every process whose namespace link can be
/// read (kernel threads included: they are in the initial namespace).
fn process_namespaces() -> Vec<(u32, u32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut link = String::with_capacity(32);
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        link.clear();
        link.push_str("/proc/");
        link.push_str(name.to_str().unwrap_or_default());
        link.push_str("/ns/net");
        // Gone meanwhile, a zombie, or not ours to read: skip.
        if let Ok(target) = fs::read_link(&link)
            && let Some(inode) = parse_ns_link(&target.to_string_lossy())
        {
            out.push((pid, inode));
        }
    }
    out
}

/// `net:[4026531840]` → 4026531840.
pub fn parse_ns_link(s: &str) -> Option<u32> {
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

impl Found {
    /// Opens the namespace: through a bind mount, else through one of its
    /// processes. Each file is checked to still be namespace `inode` (a
    /// pid may have been reused, a mount replaced).
    pub fn open(&self, inode: u32) -> std::io::Result<File> {
        let mut last = std::io::Error::from(std::io::ErrorKind::NotFound);
        let procs = self
            .pids
            .iter()
            .map(|p| PathBuf::from(format!("/proc/{p}/ns/net")));
        for path in self.mounts.iter().cloned().chain(procs) {
            match File::open(&path).and_then(|f| Ok((f.metadata()?.ino(), f))) {
                Ok((ino, f)) if ino == u64::from(inode) => return Ok(f),
                Ok(_) => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Whether `--netns WANT` selects this namespace, whose name is
    /// `name`: by that name, by the file name of any of its bind mounts,
    /// by `pid:N` of any of its processes, or by its inode number.
    pub fn answers_to(&self, inode: u32, name: Option<&str>, want: &str) -> bool {
        if name == Some(want) || want.parse::<u32>().ok() == Some(inode) {
            return true;
        }
        if let Some(pid) = want
            .strip_prefix("pid:")
            .and_then(|p| p.parse::<u32>().ok())
        {
            return self.pids.binary_search(&pid).is_ok();
        }
        self.mounts
            .iter()
            .any(|m| m.file_name().is_some_and(|f| f == want))
    }

    /// The mount under /run/netns (`ip netns`'s own), if any.
    pub fn run_netns_mount(&self) -> Option<&Path> {
        self.mounts
            .iter()
            .map(PathBuf::as_path)
            .find(|m| m.parent() == Some(Path::new(NETNS_RUN_DIR)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link("mnt:[4026531840]"), None);
        assert_eq!(parse_ns_link("net:[x]"), None);
    }

    #[test]
    fn mounts_and_processes_combine() {
        let mounts = vec![
            NsMount {
                inode: 7,
                path: "/run/netns/b".into(),
            },
            NsMount {
                inode: 7,
                path: "/run/netns/b".into(),
            },
            NsMount {
                inode: 8,
                path: "/tmp/x/c".into(),
            },
        ];
        let s = combine(mounts, vec![(30, 9), (12, 9), (5, 7)]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[&7].mounts, vec![PathBuf::from("/run/netns/b")]);
        assert_eq!(s[&7].pids, vec![5]);
        assert!(s[&8].pids.is_empty());
        assert_eq!(s[&9].pids, vec![12, 30]);
        assert!(s[&9].mounts.is_empty());
    }

    #[test]
    fn netns_selection() {
        let f = Found {
            mounts: vec!["/run/netns/red".into(), "/tmp/d/blue".into()],
            pids: vec![10, 20],
            newest: None,
        };
        assert!(f.answers_to(99, Some("red"), "red"));
        assert!(f.answers_to(99, Some("red"), "blue"));
        assert!(f.answers_to(99, Some("red"), "pid:20"));
        assert!(f.answers_to(99, Some("red"), "99"));
        assert!(!f.answers_to(99, Some("red"), "pid:30"));
        assert!(!f.answers_to(99, Some("red"), "green"));
        assert_eq!(f.run_netns_mount(), Some(Path::new("/run/netns/red")));
    }

    #[test]
    fn own_namespace_is_found_with_this_process() {
        let own = fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        let s = scan(&mut NetMounts::new());
        assert!(s[&own].pids.contains(&std::process::id()));
        assert!(s[&own].open(own).is_ok());
        assert!(s[&own].open(own.wrapping_add(1)).is_err());
    }
}
