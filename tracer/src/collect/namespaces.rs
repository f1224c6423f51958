//! The network namespaces the tracer watches: its own and every one named
//! under /run/netns (or only those given with --netns). Each has a reader
//! thread on a notification socket and a dump socket. Namespaces that
//! appear later are picked up; one whose name is removed is let go (our
//! sockets would otherwise keep it alive).
use std::{
    collections::HashMap,
    fs::File,
    os::unix::fs::MetadataExt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use anyhow::{Context as _, Result};
use netlink_sys::Socket;
use tokio::sync::mpsc::Sender;

use super::NsInput;
use crate::{
    netlink::{
        route_msg::RouteMsg,
        socket::{self, DumpKind, Received},
    },
    nsfs::{NETNS_RUN_DIR, open_named},
};

pub struct Watched {
    dump: Socket,
    stop: Arc<AtomicBool>,
    seq: u32,
}

impl Watched {
    pub fn dump(&mut self, what: DumpKind) -> Result<Vec<crate::netlink::decode::NlItem>> {
        self.seq = self.seq.wrapping_add(1);
        socket::dump(&self.dump, what, self.seq)
    }

    /// Dump the routes, handing each to `each` as it is read.
    pub fn dump_routes(&mut self, each: &mut dyn FnMut(&RouteMsg)) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        socket::dump_routes(&self.dump, self.seq, each)
    }
}

impl Watched {
    /// Which route the kernel would choose now for `q` in this namespace.
    pub fn get_route(&mut self, q: &socket::RouteQuery) -> Result<crate::event::Route> {
        self.seq = self.seq.wrapping_add(1);
        socket::get_route(&self.dump, q, self.seq)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct Namespaces {
    /// Only these names (from --netns); empty: every named one plus our own.
    only: Vec<String>,
    pub watched: HashMap<u32, Watched>,
    tx: Sender<NsInput>,
    /// Readers whose last read filled a whole batch: their socket likely
    /// holds more, so the changes waiting for it must not expire yet.
    busy: Arc<AtomicUsize>,
}

fn inode_of(f: &File) -> Result<u32> {
    Ok(f.metadata().context("stat of a namespace file")?.ino() as u32)
}

impl Namespaces {
    pub fn new(only: Vec<String>, tx: Sender<NsInput>) -> Self {
        Namespaces {
            only,
            watched: HashMap::new(),
            tx,
            busy: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether some notification socket still holds a backlog.
    pub fn backlog(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// Names under /run/netns now.
    fn named() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(NETNS_RUN_DIR)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Also watch namespace `name` (an --iface namespace) when --netns
    /// restricts the set; without --netns every named namespace is watched.
    pub fn also_watch(&mut self, name: &str) {
        if !self.only.is_empty() && !self.only.iter().any(|n| n == name) {
            self.only.push(name.to_string());
        }
    }

    /// Whether the tracer's own namespace is watched.
    pub fn watches_own(&self) -> bool {
        self.only.is_empty()
    }

    /// Check that every --netns name exists (start-up: a clear error).
    pub fn check_names(&self) -> Result<()> {
        for n in &self.only {
            open_named(n)?;
        }
        Ok(())
    }

    /// The inodes of the namespaces watched, or to be watched (the --netns
    /// names that exist now).
    pub fn inodes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.watched.keys().copied().collect();
        for name in &self.only {
            if let Ok(m) = std::fs::metadata(format!("{NETNS_RUN_DIR}/{name}")) {
                v.push(m.ino() as u32);
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// Start watching namespaces that appeared; stop those that went away.
    /// Returns the inodes newly watched.
    pub fn rescan(&mut self) -> Vec<u32> {
        let mut want: Vec<(Option<String>, Option<File>)> = Vec::new();
        if self.only.is_empty() {
            want.push((None, None));
        }
        for name in Self::named() {
            if !self.only.is_empty() && !self.only.contains(&name) {
                continue;
            }
            if let Ok(f) = open_named(&name) {
                want.push((Some(name), Some(f)));
            }
        }
        let mut present = Vec::new();
        let mut added = Vec::new();
        for (name, file) in want {
            let inode = match &file {
                Some(f) => inode_of(f),
                None => std::fs::metadata("/proc/self/ns/net")
                    .map(|m| m.ino() as u32)
                    .map_err(Into::into),
            };
            let Ok(inode) = inode else { continue };
            present.push(inode);
            if self.watched.contains_key(&inode) {
                continue;
            }
            match self.start(inode, file.as_ref()) {
                Ok(w) => {
                    self.watched.insert(inode, w);
                    added.push(inode);
                }
                Err(e) => log::warn!(
                    "cannot watch namespace {}: {e:#}",
                    name.as_deref().unwrap_or("(own)")
                ),
            }
        }
        self.watched.retain(|inode, _| present.contains(inode));
        added
    }

    fn start(&self, inode: u32, file: Option<&File>) -> Result<Watched> {
        let notify = socket::notification_socket(file)?;
        let dump = socket::dump_socket(file)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, flag) = (self.tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("netns-{inode}"))
            .spawn({
                let busy = self.busy.clone();
                move || read_loop(inode, notify, tx, flag, busy)
            })
            .context("spawning a namespace reader")?;
        Ok(Watched { dump, stop, seq: 0 })
    }
}

/// Notifications read per batch sent to the main loop.
const NOTIFY_BATCH: usize = 256;

/// Read notifications until told to stop or the receiver is gone. When the
/// main loop falls behind, the channel fills and this thread waits: the
/// backlog stays in the kernel's socket buffer, and if that overflows the
/// main loop hears of it (`Overflow`) and re-reads the routes.
fn read_loop(
    netns: u32,
    s: Socket,
    tx: Sender<NsInput>,
    stop: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
) {
    let mut bufs = socket::RecvBuffers::default();
    let mut full = false;
    let mut set_full = |now: bool| {
        if now != full {
            if now {
                busy.fetch_add(1, Ordering::Relaxed);
            } else {
                busy.fetch_sub(1, Ordering::Relaxed);
            }
            full = now;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let (items, overflow) = match socket::receive(&s, &mut bufs, 100, NOTIFY_BATCH) {
            Ok(Received::Idle) => {
                set_full(false);
                continue;
            }
            Ok(Received::Items { items, overflow }) => (items, overflow),
            Err(e) => {
                set_full(false);
                let _ = tx.blocking_send(NsInput::Failed {
                    netns,
                    error: format!("{e:#}"),
                });
                return;
            }
        };
        // A whole batch: the socket likely holds more.
        set_full(items.len() >= NOTIFY_BATCH);
        if !items.is_empty() && tx.blocking_send(NsInput::Notify { netns, items }).is_err() {
            break;
        }
        if overflow && tx.blocking_send(NsInput::Overflow { netns }).is_err() {
            break;
        }
    }
    set_full(false);
}
