//! Where events go: stdout (text or JSON lines) and, with `--output`, a
//! file of JSON lines. Writes are buffered and flushed after every batch so
//! that nothing reported is lost on SIGINT/SIGTERM.
use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
};

use anyhow::{Context as _, Result};

use super::text;
use crate::event::{Event, Kind};
use crate::zone::Zone;

/// Which events stdout shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// Every event (`watch`).
    All,
    /// Only what needs attention while the events go elsewhere (`record`,
    /// `guard`): ready, lost, loops, journal health and guard events.
    Notable,
}

impl Show {
    fn shows(self, e: &Event) -> bool {
        match self {
            Show::All => true,
            Show::Notable => !matches!(
                e.kind,
                Kind::RuleAdd
                    | Kind::RuleDel
                    | Kind::RouteAdd
                    | Kind::RouteDel
                    | Kind::RouteReplace
                    | Kind::Snapshot
                    | Kind::SnapshotEnd
                    | Kind::NetnsNew
                    | Kind::NetnsGone
            ),
        }
    }
}

pub struct Sink {
    json: bool,
    show: Show,
    /// The zone of text lines' times.
    zone: Zone,
    stdout: BufWriter<std::io::Stdout>,
    file: Option<(String, BufWriter<File>)>,
    /// stdout was closed (e.g. piped into `head`): keep writing the file.
    stdout_closed: bool,
    /// The JSON line being written.
    line: Vec<u8>,
}

/// Output buffer size: a burst of a million events is written in large
/// pieces (events are still flushed after every batch).
const BUF_BYTES: usize = 1 << 20;

impl Sink {
    /// Open the sink; `--output` is created (or appended to) now so that an
    /// unwritable path fails before anything is attached.
    pub fn open(json: bool, output: Option<&Path>, show: Show, zone: Zone) -> Result<Sink> {
        let file = match output {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot write --output {}", p.display()))?;
                Some((
                    p.display().to_string(),
                    BufWriter::with_capacity(BUF_BYTES, f),
                ))
            }
            None => None,
        };
        Ok(Sink {
            json,
            show,
            zone,
            stdout: BufWriter::with_capacity(BUF_BYTES, std::io::stdout()),
            file,
            stdout_closed: false,
            line: Vec::with_capacity(1024),
        })
    }

    pub fn write(&mut self, e: &Event) -> Result<()> {
        let to_stdout = !self.stdout_closed && self.show.shows(e);
        // Serialize only if someone reads JSON, and only once, into a
        // buffer reused from event to event.
        let json = (to_stdout && self.json) || self.file.is_some();
        if json {
            self.line.clear();
            crate::event::Host::this()
                .write_json(e, &mut self.line)
                .context("serializing an event")?;
            self.line.push(b'\n');
        }
        if to_stdout {
            let ok = if self.json {
                self.stdout.write_all(&self.line)
            } else {
                writeln!(self.stdout, "{}", text::line(e, self.zone))
            };
            self.stdout_closed = ok.is_err();
        }
        if let (Some((name, f)), true) = (&mut self.file, json) {
            f.write_all(&self.line)
                .with_context(|| format!("writing --output {name}"))?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        if !self.stdout_closed && self.stdout.flush().is_err() {
            self.stdout_closed = true;
        }
        if let Some((name, f)) = &mut self.file {
            f.flush()
                .with_context(|| format!("writing --output {name}"))?;
        }
        Ok(())
    }

    /// Whether anyone still reads the events.
    pub fn closed(&self) -> bool {
        self.stdout_closed && self.file.is_none()
    }
}
