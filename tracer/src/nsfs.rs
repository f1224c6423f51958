//! Network namespace files: `ip netns add NAME` bind-mounts the namespace's
//! nsfs file on `/run/netns/NAME`. A leaf: collection opens them to read a
//! namespace, enrichment names namespaces by them, the packet hooks and the
//! guard enter them.
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The tracer's own network namespace.
pub const OWN_NETNS: &str = "/proc/self/ns/net";

/// Failures to look up or open a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The tracer's own namespace file could not be examined.
    #[error("cannot stat {OWN_NETNS}: {0}")]
    OwnNamespace(#[source] io::Error),
    /// The name is empty, `.`, `..` or contains `/` or NUL.
    #[error("invalid network namespace name {0:?}: expected a plain name as in `ip netns list`")]
    InvalidName(String),
    /// There is no such file under the namespace directory.
    #[error("no network namespace named {name:?} in {}; {}", dir.display(), describe(existing))]
    NotFound {
        name: String,
        dir: PathBuf,
        existing: Vec<String>,
    },
    /// The file exists but could not be opened or examined.
    #[error("cannot open network namespace {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file exists but no namespace is mounted on it (typically left over after a
    /// namespace was deleted while in use).
    #[error("{} exists but is not a namespace file (no nsfs mount on it; stale entry?)", path.display())]
    NotNsfs { path: PathBuf },
}

fn describe(existing: &[String]) -> String {
    if existing.is_empty() {
        "there are no named network namespaces".to_owned()
    } else {
        format!("existing: {}", existing.join(", "))
    }
}

/// Opens the nsfs file of the named network namespace `/run/netns/NAME` (e.g. to `setns` into
/// it). The error for an unknown name lists the namespaces that do exist.
pub fn open_named(name: &str) -> Result<File, NetnsError> {
    open_in(Path::new(NETNS_RUN_DIR), name, true)
}

pub fn open_in(dir: &Path, name: &str, require_nsfs: bool) -> Result<File, NetnsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(NetnsError::InvalidName(name.to_owned()));
    }
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(NetnsError::NotFound {
                name: name.to_owned(),
                dir: dir.to_owned(),
                existing: list_names(dir),
            });
        }
        Err(source) => return Err(NetnsError::Open { path, source }),
    };
    if require_nsfs {
        let fs = fstatfs(&file).map_err(|errno| NetnsError::Open {
            path: path.clone(),
            source: errno.into(),
        })?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(NetnsError::NotNsfs { path });
        }
    }
    Ok(file)
}

/// Sorted names of the entries of `dir`; empty if it cannot be read.
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A network namespace's nsfs file bind-mounted somewhere (`ip netns add`
/// under /run/netns, Docker under /run/docker/netns, anything else), as
/// `/proc/self/mountinfo` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsMount {
    pub inode: u32,
    pub path: PathBuf,
}

/// The network namespace mounts among `mounts`: nsfs entries whose root
/// is `net:[INODE]` (other namespace types are skipped).
pub fn net_mounts<'a>(
    mounts: impl IntoIterator<Item = &'a procfs::process::MountInfo>,
) -> Vec<NsMount> {
    mounts
        .into_iter()
        .filter(|m| m.fs_type == "nsfs")
        .filter_map(|m| {
            let inode = m
                .root
                .strip_prefix("net:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            let path = unescape_mount_path(&m.mount_point.to_string_lossy());
            Some(NsMount { inode, path })
        })
        .collect()
}

/// The network namespace mounts in the tracer's mount namespace, read
/// again only when the mount table changed: the kernel flags an open
/// mountinfo file (POLLPRI) when a mount is added or removed.
pub struct NetMounts {
    file: Option<File>,
    last: Vec<NsMount>,
}

impl NetMounts {
    pub fn new() -> Self {
        NetMounts {
            file: None,
            last: Vec::new(),
        }
    }

    /// The mounts now (the last ones read, when nothing changed since).
    pub fn read(&mut self) -> io::Result<&[NsMount]> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        let changed = match &self.file {
            None => true,
            Some(f) => {
                let mut pfd = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLPRI,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, no waiting.
                let n = unsafe { libc::poll(&mut pfd, 1, 0) };
                n != 0 || pfd.revents != 0
            }
        };
        if changed {
            let f = match &mut self.file {
                Some(f) => f,
                None => self.file.insert(File::open("/proc/self/mountinfo")?),
            };
            f.rewind()?;
            let mut text = String::with_capacity(16 << 10);
            f.read_to_string(&mut text)?;
            self.last = net_mounts_in(&text);
        }
        Ok(&self.last)
    }
}

impl Default for NetMounts {
    fn default() -> Self {
        Self::new()
    }
}

/// The network namespace mounts of mountinfo text (only nsfs lines are
/// handed to procfs's parser).
pub fn net_mounts_in(text: &str) -> Vec<NsMount> {
    let infos: Vec<procfs::process::MountInfo> = text
        .lines()
        .filter(|l| l.contains(" - nsfs "))
        .filter_map(|l| procfs::process::MountInfo::from_line(l).ok())
        .collect();
    net_mounts(&infos)
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`
/// octal escapes; procfs hands the field over as written.
fn unescape_mount_path(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Runs `f` on a thread inside the namespace of `ns` (None: the tracer's
/// own): sockets, tc and /proc/net files belong to the namespace of the
/// thread that opens them.
pub fn in_netns<T: Send>(
    ns: Option<&File>,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(ns) = ns {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("cannot enter the network namespace (setns)")?;
            }
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    #[test]
    fn open_rejects_invalid_names() {
        for name in ["", ".", "..", "a/b", "../etc", "a\0b"] {
            assert!(
                matches!(open_named(name), Err(NetnsError::InvalidName(_))),
                "{name:?} accepted",
            );
        }
    }

    #[test]
    fn open_unknown_name_lists_existing() {
        let tmp = TempDir::new("netns-open");
        fs::write(tmp.path().join("red"), "").unwrap();
        fs::write(tmp.path().join("blue"), "").unwrap();
        let err = open_in(tmp.path(), "green", true).unwrap_err();
        assert!(
            matches!(&err, NetnsError::NotFound { existing, .. } if existing == &["blue", "red"])
        );
        assert!(err.to_string().contains("existing: blue, red"), "{err}");

        let empty = TempDir::new("netns-empty");
        let err = open_in(empty.path(), "green", true).unwrap_err();
        assert!(
            err.to_string().contains("no named network namespaces"),
            "{err}"
        );
    }

    #[test]
    fn open_requires_nsfs() {
        let tmp = TempDir::new("netns-stale");
        fs::write(tmp.path().join("stale"), "").unwrap();
        let err = open_in(tmp.path(), "stale", true).unwrap_err();
        assert!(matches!(err, NetnsError::NotNsfs { .. }), "{err}");
        assert!(open_in(Path::new("/proc/self/ns"), "net", true).is_ok());
    }

    fn mounts(text: &str) -> Vec<NsMount> {
        use procfs::FromBufRead;
        let infos = procfs::process::MountInfos::from_buf_read(text.as_bytes()).unwrap();
        let all = net_mounts(&infos);
        assert_eq!(net_mounts_in(text), all);
        all
    }

    #[test]
    fn mountinfo_nsfs_entries_are_network_namespaces() {
        let text = "\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
46 45 0:4 net:[4026532174] /run/netns/t9 rw shared:2 - nsfs nsfs rw
47 45 0:4 net:[4026532304] /run/docker/netns/1a2b3c4d5e6f rw shared:3 - nsfs nsfs rw
48 22 0:4 mnt:[4026532400] /tmp/mnt-ns rw - nsfs nsfs rw
49 22 0:4 net:[4026532500] /tmp/a\\040dir/x rw - nsfs nsfs rw
50 22 0:25 net:[1] /not/nsfs rw - tmpfs tmpfs rw
";
        assert_eq!(
            mounts(text),
            vec![
                NsMount {
                    inode: 4026532174,
                    path: "/run/netns/t9".into()
                },
                NsMount {
                    inode: 4026532304,
                    path: "/run/docker/netns/1a2b3c4d5e6f".into()
                },
                NsMount {
                    inode: 4026532500,
                    path: "/tmp/a dir/x".into()
                },
            ]
        );
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path("/a\\011b\\134c"),
            PathBuf::from("/a\tb\\c")
        );
        assert_eq!(
            unescape_mount_path("/trailing\\"),
            PathBuf::from("/trailing\\")
        );
        assert_eq!(
            unescape_mount_path("/no\\9escape"),
            PathBuf::from("/no\\9escape")
        );
    }

    #[test]
    fn own_mounts_are_read_again_only_after_a_change() {
        let mut m = NetMounts::new();
        let first = m.read().unwrap().to_vec();
        assert_eq!(m.read().unwrap(), first.as_slice());
    }
}
