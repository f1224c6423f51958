//! Who ended a namespace that went away, for the routes it took with it
//! (`netns_exit`). A namespace ends when the last thing holding it goes:
//!
//! - a bind mount (`ip netns del NAME` unmounts `/run/netns/NAME`, Docker
//!   unmounts under `/run/docker/netns`): the process whose unmount
//!   (syscalls:sys_enter_umount) named one of the mount paths the last
//!   scan saw, within [`UNMOUNT_KEEP`];
//! - else its processes (`unshare -n`, containers without a mount): the
//!   newest process the last scan saw holding it (`collect::holders`),
//!   whose exit ended it;
//! - else no process, and the note says why.
use std::{
    collections::VecDeque,
    os::unix::ffi::OsStrExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use super::{Engine, Note, Object, Outcome, ok};
use crate::{
    collect::{netns_scan::Found, task::Task},
    event::{Cause, Op, Source},
};

/// Unmounts remembered, newest last.
pub const UNMOUNTS_MAX: usize = 64;
/// How long an unmount may explain a namespace found gone (scans run
/// twice a second).
pub const UNMOUNT_KEEP: Duration = Duration::from_secs(5);

/// Why a gone namespace's routes name the process they do, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The process unmounted a bind mount of it; `held_too`: processes
    /// held it too at the last scan (they exited since, unseen).
    Unmounted { held_too: bool },
    /// Processes alone held it at the last scan; the process named is the
    /// newest of the `of` of them.
    LastHolder { of: usize },
    /// No scan saw what held it.
    NotSeen,
    /// Its bind mount went, and no unmount the tracer saw named it.
    MountGone,
    /// Its processes had exited before the scan could read any of them.
    HolderUnread,
}

struct Unmount {
    at: Instant,
    path: Vec<u8>,
    task: Task,
}

/// The last unmounts, at most [`UNMOUNTS_MAX`] of the last [`UNMOUNT_KEEP`].
#[derive(Default)]
pub struct Unmounts {
    recent: VecDeque<Unmount>,
}

impl Unmounts {
    /// `task` called umount2 on `path` at `now`.
    pub fn note(&mut self, task: Task, path: Vec<u8>, now: Instant) {
        self.expire(now);
        if self.recent.len() >= UNMOUNTS_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(Unmount {
            at: now,
            path,
            task,
        });
    }

    fn expire(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|u| now.saturating_duration_since(u.at) > UNMOUNT_KEEP)
        {
            self.recent.pop_front();
        }
    }

    /// The process of the latest unmount of one of `mounts`, taken (it
    /// ended one namespace).
    fn take(&mut self, mounts: &[PathBuf], now: Instant) -> Option<Task> {
        self.expire(now);
        let i = self
            .recent
            .iter()
            .rposition(|u| mounts.iter().any(|m| same_path(&u.path, m)))?;
        self.recent.remove(i).map(|u| u.task)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.recent.len()
    }
}

/// Whether the path a process unmounted names mount `mount`: the same
/// absolute path, or that path with a trailing slash. (A relative path
/// is not resolved: the process's working directory is not known.)
fn same_path(unmounted: &[u8], mount: &std::path::Path) -> bool {
    let m = mount.as_os_str().as_bytes();
    if !unmounted.starts_with(b"/") {
        return false;
    }
    unmounted == m || (unmounted.len() > 1 && unmounted.strip_suffix(b"/") == Some(m))
}

/// Who ended a namespace that the last scan saw as `last` (`None`: no
/// scan saw it), and why that one.
pub fn who_ended(
    last: Option<&Found>,
    unmounts: &mut Unmounts,
    now: Instant,
) -> (Option<Task>, Ended) {
    let Some(last) = last else {
        return (None, Ended::NotSeen);
    };
    if !last.mounts.is_empty() {
        return match unmounts.take(&last.mounts, now) {
            Some(t) => (
                Some(t),
                Ended::Unmounted {
                    held_too: !last.pids.is_empty(),
                },
            ),
            None => (None, Ended::MountGone),
        };
    }
    match last.newest {
        Some(t) => (
            Some(t),
            Ended::LastHolder {
                of: last.pids.len(),
            },
        ),
        None if last.pids.is_empty() => (None, Ended::NotSeen),
        None => (None, Ended::HolderUnread),
    }
}

impl Engine {
    /// `task` called umount2 on `path`: it may end a namespace.
    pub(super) fn unmount(&mut self, task: Task, path: Vec<u8>, now: Instant) {
        self.unmounts.note(task, path, now);
    }

    /// A namespace went away: the kernel removed its routes with it. Each
    /// route the mirror held is reported removed (`netns_exit`) by the
    /// process that ended it ([`who_ended`]; `last` is what held it at the
    /// last scan), then the namespace is no longer followed.
    pub fn forget(&mut self, netns: u32, last: Option<&Found>, now: Instant) {
        let Some(m) = self.mirrors.remove(&netns) else {
            return;
        };
        let (who, ended) = who_ended(last, &mut self.unmounts, now);
        for route in m.routes() {
            let mut o = Outcome::new(Source::Netlink, Op::Del, netns, Object::Route(route));
            o.result = ok();
            o.cause = Some(Cause::NetnsExit);
            o.who = who;
            o.note = Some(Note::NamespaceGone(ended));
            self.emit_now(o);
        }
        self.nh_expected.remove(&netns);
        self.nh_after.retain(|k, _| k.0 != netns);
        self.read_to.remove(&netns);
    }
}

#[cfg(test)]
#[path = "netns_exit_tests.rs"]
mod tests;
