//! Process, cgroup/unit and network-namespace enrichment from /proc, /sys/fs/cgroup and /run/netns.
//!
//! * [`process::ProcessCache`]: pid → comm, exe, ppid, uid, start time, also for exited processes;
//! * [`cgroup::CgroupResolver`]: cgroup v2 id → cgroup path, and [`unit::unit_from_cgroup_path`]
//!   → systemd unit or container;
//! * [`netns::NetnsNames`]: network namespace inode → `ip netns` name.
//!
//! [`Enricher`] bundles the three for the event loop.
#![allow(dead_code)]

pub mod cgroup;
pub mod netns;
pub mod present;
pub mod process;
pub mod unit;

#[cfg(test)]
mod test_util;

use serde::Serialize;

use self::cgroup::CgroupResolver;
use self::netns::{NetnsError, NetnsNames};
use self::process::{ProcInfo, ProcessCache, ProcessError};

/// Failure to set up enrichment.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Everything the enrichers know about one event's origin (raw, unescaped strings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Enrichment {
    /// The process, live or from the cache.
    pub process: Option<ProcInfo>,
    /// Best-known executable (see [`ProcessCache::exe`]).
    pub exe: Option<String>,
    /// Cgroup v2 path, e.g. `/system.slice/systemd-networkd.service`.
    pub cgroup: Option<String>,
    /// Unit or container derived from the cgroup path.
    pub unit: Option<String>,
    /// `ip netns` name of the network namespace.
    pub netns: Option<String>,
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

    /// Gathers what is known about process `pid` in cgroup `cgroup_id` and network namespace
    /// `netns_inode`.
    pub fn enrich(&mut self, pid: u32, cgroup_id: u64, netns_inode: u32) -> Enrichment {
        let process = self.processes.lookup(pid);
        let exe = self.processes.exe(pid);
        let cgroup = self.cgroups.as_mut().and_then(|c| c.resolve(cgroup_id));
        let unit = cgroup.as_deref().and_then(unit::unit_from_cgroup_path);
        Enrichment {
            process,
            exe,
            cgroup,
            unit,
            netns: self.netns.name(netns_inode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn enriches_own_process() {
        let mut enricher = Enricher::new().unwrap();
        let pid = std::process::id();
        let netns = enricher.netns.own_inode();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let cgroups = enricher.cgroups.as_ref().unwrap();
        let dir = cgroups.mount_point().join(path.trim_start_matches('/'));
        let cgroup_id = std::fs::metadata(dir).unwrap().ino();

        let e = enricher.enrich(pid, cgroup_id, netns);
        assert_eq!(e.process.map(|p| p.pid), Some(pid));
        assert!(e.exe.is_some());
        assert_eq!(e.cgroup.as_deref(), Some(path));
        assert_eq!(e.unit, unit::unit_from_cgroup_path(path));
    }
}
