//! Writing the journal: complete JSON lines appended to the newest file,
//! rotated by size and age, old files removed by total size and age.
//!
//! Guarantees:
//! - A line counted as written is in the file as a whole line: writes go
//!   straight to the kernel after every batch, so SIGKILL cannot lose them,
//!   and `fdatasync` runs at least every `fsync_every`, so a power cut loses
//!   at most that much.
//! - A file never ends in half a line: a failed write is cut back to the last
//!   complete line, and at start-up a file left with a partial last line (a
//!   crash in the middle of a write) is repaired the same way.
//! - When the disk is full (or any write fails), events are kept in memory up
//!   to `max_pending_bytes` (then counted as dropped), one `journal_error`
//!   is reported, writing is retried every second, and `journal_resumed`
//!   (with the dropped count) follows when it works again. The held lines
//!   go out file by file, with the size limits applied between files, so a
//!   backlog larger than the space freed (a small disk) still gets written.
//! - One recorder per directory: the journal holds an exclusive `flock` on
//!   `tracer.lock` in the directory (holding its pid) while it is open, and
//!   a second recorder is refused with an error naming the first one's pid
//!   (two would write every change twice). The kernel drops the lock when
//!   the process ends, however it ends.
use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use nix::fcntl::{Flock, FlockArg};

use super::{file_name, is_journal_file};

/// Retention and durability settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub dir: PathBuf,
    /// Rotate once the active file reaches this size.
    pub max_file_bytes: u64,
    /// Rotate once the active file is this old.
    pub max_file_age: Duration,
    /// Remove the oldest files while all of them together exceed this.
    pub max_total_bytes: u64,
    /// Remove files older than this.
    pub max_age: Duration,
    /// Longest time a written line may stay unsynced.
    pub fsync_every: Duration,
    /// Memory for events that could not be written yet.
    pub max_pending_bytes: usize,
}

/// What the journal wants reported, by the caller, as events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Writing failed; events are held in memory.
    Failed { path: String, error: String },
    /// Writing works again; `dropped` events could not be kept.
    Resumed { path: String, dropped: u64 },
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub lines_written: u64,
    pub bytes_written: u64,
    pub lines_dropped: u64,
    pub write_errors: u64,
    pub rotations: u64,
    pub files_removed: u64,
    pub pending_bytes: u64,
    pub failing: bool,
}

struct Active {
    path: PathBuf,
    file: File,
    /// Bytes of complete lines in the file.
    len: u64,
    opened: SystemTime,
    /// Written since the last fdatasync.
    dirty: bool,
}

/// The directory's lock file (not a journal file: readers skip it).
pub const LOCK_FILE: &str = "tracer.lock";

/// Why the journal directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "--journal {dir} is already being recorded by another tracer (pid {pid}); one recorder per journal directory"
    )]
    Held { dir: String, pid: String },
    #[error("cannot lock --journal {dir} ({LOCK_FILE}): {source}")]
    Io { dir: String, source: std::io::Error },
}

/// Takes the directory's lock and writes this process's pid into it.
pub fn lock(dir: &Path) -> Result<Flock<File>, LockError> {
    let io = |source| LockError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut held) => {
            held.set_len(0).map_err(io)?;
            held.write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(io)?;
            Ok(held)
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            Err(LockError::Held {
                dir: dir.display().to_string(),
                pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
            })
        }
        Err((_, e)) => Err(io(std::io::Error::from(e))),
    }
}

pub struct Journal {
    cfg: Config,
    /// Held while the journal is open.
    _lock: Flock<File>,
    active: Option<Active>,
    /// Complete lines not yet in the file.
    pending: Vec<u8>,
    /// Set while writing fails: the error, when it was last retried.
    failing: Option<(String, Instant)>,
    dropped: u64,
    last_sync: Instant,
    health: Vec<Health>,
    stats: Stats,
}

const RETRY: Duration = Duration::from_secs(1);

/// Queued bytes that are written at once rather than at the next flush.
const WRITE_AT: usize = 1 << 20;

impl Journal {
    /// Open the journal: create the directory, repair files a crash left
    /// with a partial last line, and start a new file. Fails (before
    /// anything is traced) when the directory cannot be written.
    pub fn open(cfg: Config) -> Result<Journal> {
        if cfg.dir.exists() && !cfg.dir.is_dir() {
            anyhow::bail!(
                "--journal {}: not a directory (the journal is a directory of files)",
                cfg.dir.display()
            );
        }
        std::fs::create_dir_all(&cfg.dir)
            .with_context(|| format!("cannot create --journal {}", cfg.dir.display()))?;
        let held = lock(&cfg.dir)?;
        for (path, _, _) in list(&cfg.dir)? {
            if let Some(cut) = repair(&path)? {
                log::warn!(
                    "{}: removed {cut} bytes of a partial last line (the previous recorder stopped in the middle of a write)",
                    path.display()
                );
            }
        }
        let active = new_file(&cfg.dir)
            .with_context(|| format!("cannot write --journal {}", cfg.dir.display()))?;
        let mut j = Journal {
            cfg,
            _lock: held,
            active: Some(active),
            pending: Vec::new(),
            failing: None,
            dropped: 0,
            last_sync: Instant::now(),
            health: Vec::new(),
            stats: Stats::default(),
        };
        j.retain();
        Ok(j)
    }

    pub fn active_path(&self) -> Option<&Path> {
        self.active.as_ref().map(|a| a.path.as_path())
    }

    /// Queue one line (without its newline). It reaches the file at the next
    /// `flush`.
    pub fn write_line(&mut self, line: &str) {
        if self.failing.is_some() && self.pending.len() + line.len() > self.cfg.max_pending_bytes {
            // Keep the oldest events: they are the ones that explain an
            // incident.
            self.dropped += 1;
            self.stats.lines_dropped += 1;
            return;
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        // A long burst (a snapshot of a full table) goes out in pieces, so
        // memory stays bounded and files rotate on time.
        if self.failing.is_none() && self.pending.len() >= WRITE_AT {
            self.flush();
        }
    }

    /// Write queued lines to the file; rotate, sync and clean up as due.
    /// While writing fails, retries at most once a second.
    pub fn flush(&mut self) {
        let now = Instant::now();
        if let Some((_, at)) = &self.failing
            && now.duration_since(*at) < RETRY
        {
            return;
        }
        if !self.pending.is_empty() {
            match self.write_pending() {
                Ok(()) => self.recovered(),
                Err(e) => self.failed(format!("{e:#}"), now),
            }
        } else if self.failing.is_some() {
            // Nothing to write: test that the file takes writes again by
            // opening a fresh one.
            match self.rotate() {
                Ok(()) => self.recovered(),
                Err(e) => self.failed(format!("{e:#}"), now),
            }
        }
        if self.failing.is_none() {
            if self.due_rotation()
                && let Err(e) = self.rotate()
            {
                self.failed(format!("{e:#}"), now);
            }
            if now.duration_since(self.last_sync) >= self.cfg.fsync_every {
                self.sync();
            }
        }
        self.stats.pending_bytes = self.pending.len() as u64;
        self.stats.failing = self.failing.is_some();
    }

    /// Flush and sync everything: at shutdown.
    pub fn close(&mut self) {
        self.failing = self
            .failing
            .take()
            .map(|(e, _)| (e, Instant::now() - RETRY));
        self.flush();
        self.sync();
    }

    pub fn take_health(&mut self) -> Vec<Health> {
        std::mem::take(&mut self.health)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Write the queued lines, file by file: the lines that fit in the
    /// active file up to `max_file_bytes` (at least one line in an empty
    /// file), then a rotation, which also removes the oldest files beyond
    /// the limits, and so on. A backlog held while the disk was full is
    /// often larger than the space freed since: written into one file, it
    /// would fail again and again; this way retention makes room for it as
    /// it goes. Lines written before a failure stay written.
    fn write_pending(&mut self) -> Result<()> {
        let mut done = 0;
        let result = self.write_from(&mut done);
        let lines = self.pending[..done].iter().filter(|b| **b == b'\n').count() as u64;
        self.pending.drain(..done);
        self.stats.lines_written += lines;
        result
    }

    /// [`Self::write_pending`] from `pending[*done..]`, advancing `done`
    /// past every line written.
    fn write_from(&mut self, done: &mut usize) -> Result<()> {
        while *done < self.pending.len() {
            if self.active.is_none() {
                self.active = Some(new_file(&self.cfg.dir)?);
            }
            let a = self.active.as_ref().expect("opened above");
            let rest = &self.pending[*done..];
            let room = self.cfg.max_file_bytes.saturating_sub(a.len);
            let mut take = if rest.len() as u64 <= room {
                rest.len()
            } else {
                rest[..room as usize]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
            };
            if take == 0 {
                if a.len > 0 {
                    self.rotate()?;
                    continue;
                }
                // A line longer than a whole file goes in whole.
                take = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
            }
            let a = self.active.as_mut().expect("opened above");
            if let Err(e) = a.file.write_all(&self.pending[*done..*done + take]) {
                // Cut back to the last complete line so the file never ends
                // in half a line; the lines stay pending.
                let _ = a.file.set_len(a.len);
                let _ = a.file.seek(SeekFrom::Start(a.len));
                return Err(e).with_context(|| format!("writing {}", a.path.display()));
            }
            a.len += take as u64;
            a.dirty = true;
            self.stats.bytes_written += take as u64;
            *done += take;
        }
        Ok(())
    }

    fn failed(&mut self, error: String, now: Instant) {
        self.stats.write_errors += 1;
        if self.failing.is_none() {
            let path = self.path_string();
            log::warn!("journal: {error}");
            self.health.push(Health::Failed {
                path,
                error: error.clone(),
            });
        }
        self.failing = Some((error, now));
    }

    fn recovered(&mut self) {
        if self.failing.take().is_some() {
            // The backlog held while writes failed (up to
            // `max_pending_bytes`, 32 MiB by default) is written: its
            // memory goes back to the system rather than staying resident
            // until the next failure.
            if self.pending.is_empty() && self.pending.capacity() > 2 * WRITE_AT {
                self.pending = Vec::new();
            }
            crate::memory::give_back();
            let path = self.path_string();
            log::warn!("journal: writing {path} again");
            self.health.push(Health::Resumed {
                path,
                dropped: self.dropped,
            });
            self.dropped = 0;
        }
    }

    fn path_string(&self) -> String {
        self.active
            .as_ref()
            .map(|a| a.path.display().to_string())
            .unwrap_or_else(|| self.cfg.dir.display().to_string())
    }

    fn due_rotation(&self) -> bool {
        self.active.as_ref().is_some_and(|a| {
            a.len >= self.cfg.max_file_bytes
                || a.opened.elapsed().unwrap_or_default() >= self.cfg.max_file_age
        })
    }

    fn rotate(&mut self) -> Result<()> {
        self.sync();
        let next = new_file(&self.cfg.dir)?;
        // An empty file left by a failed attempt is not worth keeping.
        if let Some(old) = self.active.replace(next)
            && old.len == 0
        {
            let _ = std::fs::remove_file(&old.path);
        }
        self.stats.rotations += 1;
        self.retain();
        Ok(())
    }

    fn sync(&mut self) {
        self.last_sync = Instant::now();
        if let Some(a) = self.active.as_mut().filter(|a| a.dirty) {
            match a.file.sync_data() {
                Ok(()) => a.dirty = false,
                Err(e) => log::warn!("journal: syncing {}: {e}", a.path.display()),
            }
        }
    }

    /// Remove the oldest files beyond the total size or the age limit, never
    /// the active one.
    fn retain(&mut self) {
        let Ok(files) = list(&self.cfg.dir) else {
            return;
        };
        let active = self.active.as_ref().map(|a| a.path.clone());
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let now = SystemTime::now();
        for (path, size, modified) in files {
            if Some(&path) == active.as_ref() {
                continue;
            }
            let old = now.duration_since(modified).unwrap_or_default() > self.cfg.max_age;
            if total <= self.cfg.max_total_bytes && !old {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= size;
                    self.stats.files_removed += 1;
                    log::info!("journal: removed {}", path.display());
                }
                Err(e) => log::warn!("journal: removing {}: {e}", path.display()),
            }
        }
    }
}

/// The journal's files, oldest first: path, size, modification time.
fn list(dir: &Path) -> Result<Vec<(PathBuf, u64, SystemTime)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_journal_file) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            out.push((
                entry.path(),
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Create the next file, named for now (never an existing one), and make
/// its name durable.
fn new_file(dir: &Path) -> Result<Active> {
    let now = chrono::Utc::now();
    let mut path = dir.join(file_name(now));
    let mut n = 1;
    while path.exists() {
        // Same microsecond: `_n` sorts after the plain name, so names keep
        // sorting in creation order.
        let name = file_name(now);
        let stem = name.strip_suffix(super::FILE_SUFFIX).unwrap_or(&name);
        path = dir.join(format!("{stem}_{n}{}", super::FILE_SUFFIX));
        n += 1;
    }
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Active {
        path,
        file,
        len: 0,
        opened: SystemTime::now(),
        dirty: false,
    })
}

/// Cut a file back to its last complete line; returns the bytes removed.
fn repair(path: &Path) -> Result<Option<u64>> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut keep = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = keep.saturating_sub(buf.len() as u64);
        let n = (keep - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        keep = start;
        if start == 0 {
            break;
        }
    }
    if keep == len {
        return Ok(None);
    }
    f.set_len(keep)
        .with_context(|| format!("repairing {}", path.display()))?;
    f.sync_all()?;
    Ok(Some(len - keep))
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
