//! Opening a network namespace by any name the tracer gives one, for the
//! commands that act in a single namespace (`guard --netns`, `explain
//! --netns`): an `ip netns` name (the fast path, /run/netns), else a bind
//! mount's file name anywhere, `docker:ID`, `podman:ID`, `k8s:UID`,
//! `lxc:NAME`, `pid:N` or an inode number, found by scanning the host's
//! namespaces as `watch` does.
use std::fs::File;

use anyhow::{Result, bail};

use crate::{
    collect::netns_scan,
    enrich::netns::NetnsNames,
    nsfs::{self, NetMounts, NetnsError},
};

/// Opens the namespace `name` names, with the names there are in the error.
pub fn open(name: &str) -> Result<File> {
    let first = match nsfs::open_named(name) {
        Ok(f) => return Ok(f),
        Err(e @ (NetnsError::NotFound { .. } | NetnsError::InvalidName(_))) => e,
        Err(e) => return Err(e.into()),
    };
    let scan = netns_scan::scan(&mut NetMounts::new());
    let mut names = NetnsNames::new()?;
    names.assign(&scan);
    let now = std::time::Instant::now();
    let mut known = Vec::new();
    for (inode, found) in &scan {
        let given = names.name_at(*inode, now);
        if found.answers_to(*inode, given.as_deref(), name) {
            return Ok(found.open(*inode)?);
        }
        known.extend(given);
    }
    known.sort();
    if known.is_empty() {
        bail!("{first}");
    }
    bail!(
        "no network namespace named {name:?}; there are {} (or give pid:N for a process's namespace)",
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_own_namespace_opens_by_a_process_and_by_inode() {
        use std::os::unix::fs::MetadataExt;
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let pid = std::process::id();
        for name in [format!("pid:{pid}"), own.to_string()] {
            let f = super::open(&name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(f.metadata().unwrap().ino(), own, "{name}");
        }
        let err = super::open("no-such-namespace-anywhere")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-namespace-anywhere"), "{err}");
    }
}
