//! Which namespaces a session watches, kept in step with the host: every
//! namespace found (processes' and bind-mounted ones), or those `--netns`
//! selects, named by `enrich::netns`. The scanner thread rescans twice a
//! second (and at once when a change comes from a namespace not watched),
//! so a new namespace is watched and a gone one let go within a second.
use std::{fs::File, io, time::Instant};

use anyhow::{Result, bail};

use crate::{
    collect::{
        namespaces::Namespaces,
        netns_scan::{Found, Scan},
    },
    enrich::netns::NetnsNames,
};

/// The `--netns` selection (empty: every namespace).
pub(super) struct Selection {
    only: Vec<String>,
}

/// What one rescan changed.
pub(super) struct Rescan {
    pub added: Vec<u32>,
    /// Let go because no process or bind mount holds them any more.
    pub gone: Vec<u32>,
    /// Whether any namespace was let go (gone, or no longer selected).
    pub changed: bool,
    /// The scan (without the namespaces left for the next one): what held
    /// each namespace, for the next rescan to tell who ended those gone.
    pub scan: Scan,
}

impl Selection {
    pub fn new(only: Vec<String>) -> Self {
        Selection { only }
    }

    /// Also watch namespace `name` (an --iface namespace) when --netns
    /// restricts the set; without --netns every namespace is watched.
    pub fn also_watch(&mut self, name: &str) {
        if !self.only.is_empty() && !self.only.iter().any(|n| n == name) {
            self.only.push(name.to_string());
        }
    }

    /// Whether every namespace, the tracer's own included, is watched.
    pub fn watches_all(&self) -> bool {
        self.only.is_empty()
    }

    /// The namespaces of `scan` to watch.
    pub fn wanted(&self, scan: &Scan, names: &mut NetnsNames) -> Vec<u32> {
        let now = Instant::now();
        scan.iter()
            .filter(|(inode, found)| {
                self.only.is_empty() || {
                    let name = names.name_at(**inode, now);
                    self.only
                        .iter()
                        .any(|w| found.answers_to(**inode, name.as_deref(), w))
                }
            })
            .map(|(inode, _)| *inode)
            .collect()
    }

    /// Start-up: each --netns name must select a namespace, or the error
    /// lists those there are.
    pub fn check(&self, scan: &Scan, names: &mut NetnsNames) -> Result<()> {
        let now = Instant::now();
        for want in &self.only {
            let known = scan.iter().any(|(inode, found)| {
                found.answers_to(*inode, names.name_at(*inode, now).as_deref(), want)
            });
            if !known && let Some(pid) = want.strip_prefix("pid:") {
                let link = format!("/proc/{pid}/ns/net");
                match std::fs::read_link(&link) {
                    Err(e) => bail!("--netns {want}: cannot read {link}: {e}"),
                    Ok(_) => bail!("--netns {want}: process {pid} is in no namespace found"),
                }
            }
            if !known {
                let mut all: Vec<String> =
                    scan.keys().filter_map(|i| names.name_at(*i, now)).collect();
                all.sort();
                bail!(
                    "no network namespace named {want:?}; there are {} (or give pid:N for a process's namespace)",
                    if all.is_empty() {
                        "no named ones".to_string()
                    } else {
                        all.join(", ")
                    }
                );
            }
        }
        Ok(())
    }
}

/// Scans the host's namespaces, names them, and watches the selected ones.
pub(super) fn rescan(
    spaces: &mut Namespaces,
    sel: &Selection,
    names: &mut NetnsNames,
    mut scan: Scan,
) -> Rescan {
    let t0 = Instant::now();
    // New namespaces held only by a process wait for the next scan while
    // an `ip netns add` is under way: one of them may be its namespace,
    // its bind mount and name still to come.
    // So do those bind-mounted since the scan read the mounts (it reads
    // the processes after): their names come with the next scan.
    let mut postponed = 0;
    let own = names.own_inode();
    let new_by_process = |inode: &u32, found: &Found| {
        found.mounts.is_empty()
            && *inode != own
            && !names.knows(*inode)
            && !spaces.watched.contains_key(inode)
    };
    if scan.iter().any(|(i, f)| new_by_process(i, f)) {
        let mounted = (!names.mount_pending()).then(|| names.mounted_now());
        scan.retain(|inode, found| {
            let wait =
                new_by_process(inode, found) && mounted.as_ref().is_none_or(|m| m.contains(inode));
            postponed += usize::from(wait);
            !wait
        });
    }
    names.assign(&scan);
    let own = names.own_inode();
    let want = sel.wanted(&scan, names);
    let (added, removed) = spaces.sync(&want, |inode| open(&scan, inode, own));
    let changed = !removed.is_empty();
    let gone = removed
        .into_iter()
        .filter(|i| {
            let still = scan.contains_key(i);
            if still {
                log::info!("namespace {i} no longer selected by --netns; not watched");
            }
            !still
        })
        .collect();
    log::debug!(
        "namespaces: {} found, {} watched, {:?} to name and watch",
        scan.len(),
        spaces.watched.len(),
        t0.elapsed()
    );
    if postponed > 0 {
        log::debug!(
            "{postponed} new namespaces held by a process alone left for the next scan: an `ip netns add` is under way or has just mounted"
        );
    }
    Rescan {
        added,
        gone,
        changed,
        scan,
    }
}

fn open(scan: &Scan, inode: u32, own: u32) -> Result<Option<File>> {
    if inode == own {
        return Ok(None);
    }
    let found = scan
        .get(&inode)
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    Ok(Some(found.open(inode)?))
}
