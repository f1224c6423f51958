//! The network namespaces the tracer watches (which ones, the session
//! decides from `netns_scan`): each has a notification socket, read by one
//! shared thread, and a dump socket. Namespaces that appear later are
//! picked up; one that is gone is let go (our sockets would otherwise keep
//! it alive).
use std::{
    collections::{HashMap, HashSet},
    fs::File,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::{Context as _, Result};
use netlink_sys::Socket;
use tokio::sync::mpsc::Sender;

use super::NsInput;
use crate::netlink::{
    route_msg::RouteMsg,
    socket::{self, DumpKind, Received},
};

/// One watched namespace: its dump socket here, its notification socket
/// with the reader (taken back when this is dropped).
pub struct Watched {
    dump: Socket,
    seq: u32,
    inode: u32,
    reader: Arc<Reader>,
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

    /// Which route the kernel would choose now for `q` in this namespace.
    pub fn get_route(&mut self, q: &socket::RouteQuery) -> Result<crate::event::Route> {
        self.seq = self.seq.wrapping_add(1);
        socket::get_route(&self.dump, q, self.seq)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.reader.remove(self.inode);
    }
}

pub struct Namespaces {
    pub watched: HashMap<u32, Watched>,
    reader: Arc<Reader>,
}

impl Namespaces {
    /// Starts the one thread that reads every watched namespace's
    /// notifications and sends them to `tx`.
    pub fn new(tx: Sender<NsInput>) -> Result<Self> {
        let reader = Arc::new(Reader::new()?);
        std::thread::Builder::new()
            .name("netns-reader".into())
            .spawn({
                let reader = reader.clone();
                move || reader.run(tx)
            })
            .context("spawning the namespace reader")?;
        Ok(Namespaces {
            watched: HashMap::new(),
            reader,
        })
    }

    /// Whether some notification socket still holds a backlog.
    pub fn backlog(&self) -> bool {
        self.reader.busy.load(Ordering::Relaxed) > 0
    }

    /// For each watched namespace, the time up to which all its
    /// notifications have been handed to the main loop: `now` if its
    /// socket holds none and the reader holds none of its (a namespace
    /// at rest), else when the reader last found its socket empty (one
    /// under a steady stream), else None. Valid only if the main loop's
    /// queue is found empty after this returns.
    pub fn read_up_to(&self, now: Instant) -> Vec<(u32, Option<Instant>)> {
        // The sockets themselves, not just their fds: one the reader lets
        // go meanwhile stays open (its fd not reused) until polled.
        let socks: Vec<(u32, Arc<Socket>)> = {
            let map = lock(&self.reader.sockets);
            map.iter().map(|(i, s)| (*i, s.clone())).collect()
        };
        let mut fds: Vec<libc::pollfd> = socks
            .iter()
            .map(|(_, s)| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` holds `fds.len()` pollfds of open sockets; a zero
        // timeout only looks.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        // After the sockets: a batch taken from one before the poll is
        // either still in the reader's hands or already queued.
        let reading = self.reader.reading.load(Ordering::SeqCst);
        let emptied = lock(&self.reader.emptied);
        socks
            .iter()
            .zip(&fds)
            .map(|((inode, _), fd)| {
                let at_rest = rc >= 0 && fd.revents == 0 && *inode != reading;
                let at = if at_rest {
                    Some(now)
                } else {
                    emptied.get(inode).copied()
                };
                (*inode, at)
            })
            .collect()
    }

    /// The inodes of the namespaces watched, ascending.
    pub fn inodes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.watched.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Watch exactly the namespaces `want`: start those not yet watched
    /// (`open` gives the namespace file, or `None` for the tracer's own)
    /// and let go of the others. Returns the inodes newly watched and
    /// those let go. A namespace that cannot be entered is logged and
    /// tried again on the next call.
    pub fn sync(
        &mut self,
        want: &[u32],
        mut open: impl FnMut(u32) -> Result<Option<File>>,
    ) -> (Vec<u32>, Vec<u32>) {
        let mut added = Vec::new();
        for &inode in want {
            if self.watched.contains_key(&inode) {
                continue;
            }
            match open(inode).and_then(|f| self.start(inode, f.as_ref())) {
                Ok(w) => {
                    self.watched.insert(inode, w);
                    added.push(inode);
                }
                // Its last process left between the scan and now.
                Err(e)
                    if e.downcast_ref::<std::io::Error>().map(|e| e.kind())
                        == Some(std::io::ErrorKind::NotFound) =>
                {
                    log::debug!("namespace {inode} went before it could be watched")
                }
                Err(e) => log::warn!("cannot watch namespace {inode}: {e:#}"),
            }
        }
        let mut removed: Vec<u32> = self
            .watched
            .keys()
            .filter(|i| !want.contains(i))
            .copied()
            .collect();
        removed.sort_unstable();
        for inode in &removed {
            self.watched.remove(inode);
        }
        (added, removed)
    }

    fn start(&self, inode: u32, file: Option<&File>) -> Result<Watched> {
        let (notify, dump) = socket::in_netns(file, || {
            Ok((socket::notification_socket()?, socket::dump_socket_here()?))
        })?;
        self.reader.add(inode, notify)?;
        Ok(Watched {
            dump,
            seq: 0,
            inode,
            reader: self.reader.clone(),
        })
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.watched.clear();
        self.reader.stop();
    }
}

/// Notifications read per batch sent to the main loop.
const NOTIFY_BATCH: usize = 256;

/// The epoll key of the reader's wake-up eventfd (namespace inodes are
/// 32-bit).
const WAKE: u64 = u64::MAX;

/// The notification sockets of every watched namespace, read by one
/// thread that sleeps in epoll while nothing happens (no per-namespace
/// thread, no timer: a few hundred idle namespaces cost nothing).
struct Reader {
    epoll: OwnedFd,
    wake: OwnedFd,
    sockets: Mutex<HashMap<u32, Arc<Socket>>>,
    stop: AtomicBool,
    /// Sockets whose last read filled a whole batch: they likely hold
    /// more, so the changes waiting for them must not expire yet.
    busy: AtomicUsize,
    /// The namespace whose notifications the reader has taken from its
    /// socket and not yet queued for the main loop (0: none).
    reading: AtomicU32,
    /// Per namespace, the start of the reader's last read that left its
    /// socket empty, set once what it read is queued.
    emptied: Mutex<HashMap<u32, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cvt(rc: libc::c_int, what: &str) -> Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error()).with_context(|| what.to_string())
    } else {
        Ok(rc)
    }
}

impl Reader {
    fn new() -> Result<Reader> {
        // SAFETY: plain system calls; the fds are owned right away.
        let (epoll, wake) = unsafe {
            let e = cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC), "epoll_create1")?;
            let epoll = OwnedFd::from_raw_fd(e);
            let w = cvt(
                libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK),
                "eventfd",
            )?;
            (epoll, OwnedFd::from_raw_fd(w))
        };
        let r = Reader {
            epoll,
            wake,
            sockets: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            reading: AtomicU32::new(0),
            emptied: Mutex::new(HashMap::new()),
        };
        r.ctl(libc::EPOLL_CTL_ADD, r.wake.as_raw_fd(), WAKE)?;
        Ok(r)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, key: u64) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: valid epoll fd and fd; ev outlives the call.
        cvt(
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) },
            "epoll_ctl on a notification socket",
        )?;
        Ok(())
    }

    fn add(&self, inode: u32, s: Socket) -> Result<()> {
        let s = Arc::new(s);
        let mut map = lock(&self.sockets);
        self.ctl(libc::EPOLL_CTL_ADD, s.as_raw_fd(), u64::from(inode))?;
        if let Some(old) = map.insert(inode, s) {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, old.as_raw_fd(), 0);
        }
        Ok(())
    }

    /// Stop reading `inode`'s socket; it closes once the reader lets go.
    fn remove(&self, inode: u32) {
        lock(&self.emptied).remove(&inode);
        let mut map = lock(&self.sockets);
        if let Some(s) = map.remove(&inode) {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, s.as_raw_fd(), 0);
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Read notifications until stopped or the receiver is gone. When the
    /// main loop falls behind, the channel fills and this thread waits:
    /// the backlog stays in the kernel's socket buffers, and if one
    /// overflows the main loop hears of it (`Overflow`) and re-reads that
    /// namespace's routes. Epoll is level-triggered, so a socket with more
    /// than a batch waiting is read again after the others had their turn.
    fn run(&self, tx: Sender<NsInput>) {
        let mut bufs = socket::RecvBuffers::default();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut full: HashSet<u32> = HashSet::new();
        while !self.stop.load(Ordering::Relaxed) {
            // SAFETY: the buffer holds `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    -1,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("waiting for namespace notifications: {e}");
                return;
            }
            for ev in &events[..n as usize] {
                let key = ev.u64;
                if key == WAKE {
                    continue;
                }
                let netns = key as u32;
                let sock = lock(&self.sockets).get(&netns).cloned();
                let Some(sock) = sock else {
                    full.remove(&netns);
                    continue;
                };
                // Set before the socket is read and cleared once what was
                // read is queued (`Namespaces::read_up_to`).
                self.reading.store(netns, Ordering::SeqCst);
                let start = Instant::now();
                let mut emptied = false;
                let sent = match socket::receive(&sock, &mut bufs, 0, NOTIFY_BATCH) {
                    Ok(Received::Idle) => {
                        full.remove(&netns);
                        emptied = true;
                        Ok(())
                    }
                    Ok(Received::Items { items, overflow }) => {
                        // A whole batch: the socket likely holds more.
                        if items.len() >= NOTIFY_BATCH {
                            full.insert(netns);
                        } else {
                            full.remove(&netns);
                            // Fewer than a batch: the read ran to the end.
                            emptied = !overflow;
                        }
                        self.busy.store(full.len(), Ordering::Relaxed);
                        let notify = (!items.is_empty())
                            .then(|| tx.blocking_send(NsInput::Notify { netns, items }));
                        match notify {
                            Some(Err(e)) => Err(e),
                            _ if overflow => tx.blocking_send(NsInput::Overflow { netns }),
                            _ => Ok(()),
                        }
                    }
                    Err(e) => {
                        full.remove(&netns);
                        self.remove(netns);
                        tx.blocking_send(NsInput::Failed {
                            netns,
                            error: format!("{e:#}"),
                        })
                    }
                };
                // Not for a socket let go meanwhile (`remove`).
                if emptied && sent.is_ok() && lock(&self.sockets).contains_key(&netns) {
                    lock(&self.emptied).insert(netns, start);
                }
                self.reading.store(0, Ordering::SeqCst);
                if sent.is_err() {
                    return;
                }
            }
            self.busy.store(full.len(), Ordering::Relaxed);
        }
    }
}
