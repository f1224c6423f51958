//! Process, cgroup/unit and network-namespace enrichment from /proc, /sys/fs/cgroup and /run/netns.
//!
//! * [`process::ProcessCache`]: pid → comm, exe, ppid, uid, start time, also for exited processes;
//! * [`cgroup::CgroupResolver`]: cgroup v2 id → cgroup path, and [`unit::unit_from_cgroup_path`]
//!   → systemd unit or container;
//! * [`netns::NetnsNames`]: network namespace inode → `ip netns` name.
//!
//! [`Enricher`] bundles the three for [`present::Presenter`].

pub mod cgroup;
pub mod netns;
pub mod netns_open;
pub mod notes;
pub mod present;
pub mod process;
pub mod unit;

use self::cgroup::CgroupResolver;
use self::netns::NetnsNames;
use self::process::{ProcessCache, ProcessError};
use crate::nsfs::NetnsError;

/// Failure to set up enrichment.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// The three resolvers behind one facade.
#[derive(Debug)]
pub struct Enricher {
    pub processes: ProcessCache,
    /// `None` when no cgroup2 file system is mounted.
    pub cgroups: Option<CgroupResolver>,
    pub netns: NetnsNames,
}

impl Enricher {
    /// Seeds the process cache and locates the cgroup2 mount. A missing cgroup2 mount only
    /// disables cgroup resolution (with a warning).
    pub fn new() -> Result<Self, EnrichError> {
        let cgroups = CgroupResolver::new()
            .inspect_err(|err| log::warn!("cgroup paths will not be reported: {err}"))
            .ok();
        Ok(Self {
            processes: ProcessCache::seed()?,
            cgroups,
            netns: NetnsNames::new()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn resolves_own_process() {
        let mut enricher = Enricher::new().unwrap();
        let pid = std::process::id();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let cgroups = enricher.cgroups.as_mut().unwrap();
        let dir = cgroups.mount_point().join(path.trim_start_matches('/'));
        let cgroup_id = std::fs::metadata(dir).unwrap().ino();
        assert_eq!(cgroups.resolve(cgroup_id).as_deref(), Some(path));
        assert!(enricher.processes.exe(pid).is_some());
    }
}
