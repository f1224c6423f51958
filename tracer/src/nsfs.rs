//! Network namespace files: `ip netns add NAME` bind-mounts the namespace's
//! nsfs file on `/run/netns/NAME`. A leaf: collection opens them to read a
//! namespace, enrichment names namespaces by them, the packet hooks and the
//! guard enter them.
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

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
}
