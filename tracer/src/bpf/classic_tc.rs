//! Classic tc for the packet programs, where tcx (Linux 6.6+) is missing:
//! a `clsact` qdisc on the interface and the programs as direct-action
//! `cls_bpf` filters on its ingress and egress hooks. Unlike tcx links,
//! these filters outlive the tracer's file descriptors, so [`ClassicTc`]
//! removes them when dropped, from inside the interface's namespace (a
//! filter is named by ifindex, priority and handle, which mean nothing in
//! another namespace). A SIGKILL leaves them in place (they return
//! `TC_ACT_UNSPEC`, so packets go on as if they were not there, but each
//! still costs a program run per packet): the next session that watches the
//! interface removes them (`orphan_tc`).
use std::{fs::File, path::PathBuf};

use aya::programs::tc::{SchedClassifierLink, qdisc_add_clsact};
use nix::sched::{CloneFlags, setns};

/// Adds the `clsact` qdisc the filters hang from. One that is already
/// there (another tool's, or an earlier session's) is used as it is, and
/// none is ever removed: other filters may depend on it.
pub fn ensure_clsact(ifname: &str) {
    // EEXIST is the common case; any other failure shows when attaching.
    let _ = qdisc_add_clsact(ifname);
}

/// The rx and tx filters of one interface, removed when dropped.
#[derive(Debug)]
pub struct ClassicTc {
    /// `/run/netns/<name>`, or None for the tracer's own namespace.
    netns: Option<PathBuf>,
    links: Vec<SchedClassifierLink>,
}

impl ClassicTc {
    pub fn new(netns: Option<PathBuf>, links: Vec<SchedClassifierLink>) -> Self {
        Self { netns, links }
    }
}

impl Drop for ClassicTc {
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.links);
        let netns = self.netns.clone();
        // Dropping a link deletes its filter through netlink in the
        // calling thread's namespace: do it from a thread inside the
        // interface's own.
        let _ = std::thread::spawn(move || {
            if let Some(path) = netns {
                let entered = File::open(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|ns| setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string()));
                if entered.is_err() {
                    // The namespace is gone, and its filters with it. Never
                    // delete by ifindex in the wrong namespace.
                    std::mem::forget(links);
                    return;
                }
            }
            drop(links);
        })
        .join();
    }
}
