//! Reading journals back: a journal directory's files in time order, or any
//! files of JSON lines (`tracer watch --json` output, `--output` files,
//! standard input as `-`), one parsed event per line.
//!
//! Reading never stops at bad input. A line that is not JSON, is cut short
//! (a crash mid-write, or the active file being written), or does not hold
//! what its kind promises becomes a [`Problem`] with its file and line, and
//! reading goes on. Kinds this version does not know, and keys it does not
//! know, are not problems: such events come as [`Data::Other`], unknown
//! keys are ignored.
//!
//! ```ignore
//! let files = journal::read::inputs(&[dir], &[])?;
//! for item in journal::read::Reader::new(files) {
//!     match item {
//!         Ok(entry) => { /* entry.ts, entry.kind, entry.data */ }
//!         Err(problem) => eprintln!("{problem}"),
//!     }
//! }
//! ```
use std::{
    collections::VecDeque,
    fmt,
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{
    Change, Family, JournalHealth, LoopLookup, Lost, Netns, Op, PacketBrief, SnapshotEnd,
    StateEntry,
};

/// Lines longer than this are skipped (as a problem) without being held in
/// memory: no event comes near it.
pub const MAX_LINE: usize = 1 << 20;

/// Where a line is: its file (as given, or as listed from the directory;
/// `-` is standard input) and its 1-based line number. Line 0 means the
/// file as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    pub line: usize,
}

fn arc_str<S: serde::Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// A line that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(flatten)]
    pub at: Location,
    pub message: String,
    /// The whole file was given up as not a journal (binary, `watch`'s text
    /// output, a line no event comes near).
    #[serde(skip)]
    pub not_a_journal: bool,
}

/// Lines at the start of a file that may fail to parse before the file is
/// judged not a journal (a journal's lines are JSON from the first).
pub const NOT_A_JOURNAL_AFTER: usize = 8;

const NOT_JOURNAL_HINT: &str = "a journal is what `tracer record` writes, or `tracer watch --json` prints; `watch` without --json prints text";

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// One event of a journal.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub at: Location,
    pub ts: DateTime<Utc>,
    /// As written: `rule_del`, `loop`, `snapshot`, or a kind this version
    /// does not know.
    pub kind: String,
    /// The mechanism (`tracepoint`, `netlink`, `tracer`, ...), when given.
    pub source: Option<String>,
    /// The host that wrote it (`host`; absent from journals written before
    /// it was added).
    pub host: Option<String>,
    /// That host's machine id (`machine_id`; on `ready` only in journals
    /// written before it was on every line).
    pub machine_id: Option<String>,
    pub data: Data,
}

/// What an event says, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `rule_add`, `rule_del`, `route_add`, `route_del`, `route_replace`
    /// (an addition whose `old` is the route replaced), `nexthop_add`,
    /// `nexthop_del`, `nexthop_replace` (an addition whose `old_nexthop`
    /// is the object replaced): the change carries a rule for `rule_*`, a
    /// route for `route_*` and a nexthop object for `nexthop_*` (checked).
    Change(Op, Box<Change>),
    /// A rule or route present when a recording started (one of the two is
    /// set, checked).
    Snapshot(Box<StateEntry>),
    SnapshotEnd(SnapshotEnd),
    /// `loop`, `loop_summary`, `loop_end`.
    Loop(LoopPhase, Box<LoopSeen>),
    Lost(Lost),
    /// The first line of a session.
    Ready(ReadySeen),
    /// `journal_error`, `journal_resumed`.
    Journal(JournalHealth),
    /// Any other kind (`guard_*`, or one this version does not know), kept
    /// as written.
    Other(Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopPhase {
    Start,
    Summary,
    End,
}

/// The fields of a `loop`, `loop_summary` or `loop_end` event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LoopSeen {
    pub netns: Netns,
    pub iface: String,
    pub family: Option<Family>,
    pub original: PacketBrief,
    pub looped: PacketBrief,
    #[serde(default)]
    pub snat: bool,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub new_packets: u64,
    #[serde(default)]
    pub ttl_exceeded: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub lookup: Option<LoopLookup>,
    pub suspect: Option<Suspect>,
    #[serde(default)]
    pub advice: String,
}

/// A loop's suspect: the change that explains it, as it was reported.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Suspect {
    pub ts: String,
    pub kind: String,
    #[serde(flatten)]
    pub change: Change,
}

/// The fields of `ready` a reader needs (the rest is about the kernel).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ReadySeen {
    pub version: Option<String>,
    pub pid: Option<u32>,
    pub kernel: Option<String>,
    #[serde(default)]
    pub namespaces: Vec<Netns>,
}

/// The files to read, checked: a journal directory's files (sorted by
/// name, which is time order), then each FILE in the order given (a
/// directory among them is read as a journal directory, `-` is standard
/// input). With neither, the default journal directory.
pub fn inputs(journals: &[PathBuf], files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    Ok(input_groups(journals, files)?.concat())
}

/// [`inputs`], kept apart by where they came from: each journal directory
/// (given with `--journal` or as a FILE) is one group, each other file one
/// of its own; their events are merged by time (`report` of many hosts).
pub fn input_groups(journals: &[PathBuf], files: &[PathBuf]) -> Result<Vec<Vec<PathBuf>>> {
    let mut groups = Vec::new();
    for dir in journals {
        groups.push(journal_files(dir)?);
    }
    for f in files {
        if f.as_os_str() == "-" {
            groups.push(vec![f.clone()]);
        } else if f.is_dir() {
            groups.push(journal_files(f)?);
        } else {
            File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
            groups.push(vec![f.clone()]);
        }
    }
    if journals.is_empty() && files.is_empty() {
        let dir = Path::new(super::DEFAULT_DIR);
        return Ok(vec![
            journal_files(dir).context("no --journal DIR or FILE given")?,
        ]);
    }
    Ok(groups)
}

/// A journal directory's files (`tracer-*.jsonl`), oldest first. Fails
/// when the directory does not exist, cannot be listed, or holds none.
pub fn journal_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let d = dir.display();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("journal directory {d} does not exist")
        }
        Err(e) => bail!("journal directory {d}: {e}"),
        Ok(m) if !m.is_dir() => bail!("{d} is not a directory (a journal is a directory)"),
        Ok(_) => {}
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {d}"))? {
        let entry = entry.with_context(|| format!("cannot list {d}"))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(super::is_journal_file) {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        bail!(
            "journal directory {d} holds no journal files ({}*{})",
            super::FILE_PREFIX,
            super::FILE_SUFFIX
        );
    }
    files.sort();
    Ok(files)
}

/// Every event of `files`, in file order then line order, and every
/// problem on the way. Files that vanish or fail mid-read are problems
/// too (rotation may remove a file between listing and reading).
pub struct Reader {
    pending: VecDeque<PathBuf>,
    current: Option<Open>,
}

struct Open {
    name: Arc<str>,
    rd: Box<dyn BufRead>,
    line: usize,
    /// An event was read from it.
    events: bool,
    /// Lines that failed to parse before the first event.
    bad_first: usize,
}

impl Reader {
    pub fn new(files: Vec<PathBuf>) -> Reader {
        Reader {
            pending: files.into(),
            current: None,
        }
    }

    /// Reads `bytes` as a listed file named `name` (the fuzz target's).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Reader {
        Reader {
            pending: VecDeque::new(),
            current: Some(Open {
                name: Arc::from(name),
                rd: Box::new(std::io::Cursor::new(bytes)),
                line: 0,
                events: false,
                bad_first: 0,
            }),
        }
    }

    /// Reads everything: the events and, apart, the problems.
    pub fn read_all(self) -> (Vec<Entry>, Vec<Problem>) {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for item in self {
            match item {
                Ok(e) => entries.push(e),
                Err(p) => problems.push(p),
            }
        }
        (entries, problems)
    }

    fn open(path: &Path) -> Result<Open, Problem> {
        let name: Arc<str> = if path.as_os_str() == "-" {
            Arc::from("<stdin>")
        } else {
            Arc::from(path.display().to_string())
        };
        let rd: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            match File::open(path) {
                Ok(f) => Box::new(BufReader::new(f)),
                Err(e) => {
                    return Err(Problem {
                        at: Location {
                            file: name,
                            line: 0,
                        },
                        message: format!("cannot read: {e}"),
                        not_a_journal: false,
                    });
                }
            }
        };
        Ok(Open {
            name,
            rd,
            line: 0,
            events: false,
            bad_first: 0,
        })
    }
}

impl Iterator for Reader {
    type Item = Result<Entry, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(cur) = self.current.as_mut() else {
                let path = self.pending.pop_front()?;
                match Reader::open(&path) {
                    Ok(o) => self.current = Some(o),
                    Err(p) => return Some(Err(p)),
                }
                continue;
            };
            cur.line += 1;
            let at = Location {
                file: cur.name.clone(),
                line: cur.line,
            };
            match read_line(&mut *cur.rd) {
                Err(e) => {
                    self.current = None;
                    return Some(Err(Problem {
                        at,
                        message: format!("read error, rest of the file skipped: {e}"),
                        not_a_journal: false,
                    }));
                }
                Ok(Line::Eof) => {
                    let (events, bad) = (cur.events, cur.bad_first);
                    self.current = None;
                    if !events && bad > 0 {
                        return Some(Err(Problem {
                            at: Location { line: 0, ..at },
                            message: format!(
                                "not a journal: none of its {bad} lines is an event ({NOT_JOURNAL_HINT})"
                            ),
                            not_a_journal: true,
                        }));
                    }
                }
                Ok(Line::TooLong) => {
                    return Some(Err(Problem {
                        at,
                        message: format!("line longer than {MAX_LINE} bytes"),
                        not_a_journal: false,
                    }));
                }
                Ok(Line::Endless) => {
                    // No event comes near it, and no newline came for a
                    // while (/dev/zero never gives one).
                    let events = cur.events;
                    self.current = None;
                    return Some(Err(Problem {
                        at,
                        message: format!(
                            "a line longer than {} bytes: not a journal; rest of the file skipped",
                            MAX_LINE + SKIP_MAX
                        ),
                        not_a_journal: !events,
                    }));
                }
                Ok(Line::Text(bytes, ended)) => match parse_line(at, &bytes, ended) {
                    Ok(None) => {}
                    Ok(Some(e)) => {
                        cur.events = true;
                        return Some(Ok(e));
                    }
                    Err(mut p) if !cur.events => {
                        cur.bad_first += 1;
                        if cur.bad_first >= NOT_A_JOURNAL_AFTER {
                            p.message = format!(
                                "not a journal: its first {NOT_A_JOURNAL_AFTER} lines are not events (the last: {}); rest of the file skipped ({NOT_JOURNAL_HINT})",
                                p.message
                            );
                            p.not_a_journal = true;
                            self.current = None;
                        }
                        return Some(Err(p));
                    }
                    Err(p) => return Some(Err(p)),
                },
            }
        }
    }
}

enum Line {
    Eof,
    /// The bytes, and whether a newline ended them.
    Text(Vec<u8>, bool),
    /// Longer than MAX_LINE, skipped to its end.
    TooLong,
    /// Longer than MAX_LINE + SKIP_MAX: the file is given up.
    Endless,
}

fn read_line(rd: &mut dyn BufRead) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = (&mut *rd)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Line::Text(buf, true));
    }
    if buf.len() <= MAX_LINE {
        return Ok(Line::Text(buf, false));
    }
    // Skip the rest of the long line, up to a bound: a line without end
    // (/dev/zero) gives the file up.
    let mut skipped = 0usize;
    loop {
        let chunk = rd.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Line::TooLong);
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                rd.consume(i + 1);
                return Ok(Line::TooLong);
            }
            None => {
                let len = chunk.len();
                rd.consume(len);
                skipped += len;
                if skipped > SKIP_MAX {
                    return Ok(Line::Endless);
                }
            }
        }
    }
}

/// How far past [`MAX_LINE`] a long line is skipped before the file is
/// given up.
const SKIP_MAX: usize = 16 * MAX_LINE;

/// One line: `Ok(None)` for a blank line, else the event or why it was
/// skipped. `ended` says whether a newline ended it (the last line of a
/// file being written, or of one cut by a crash, has none).
pub fn parse_line(at: Location, bytes: &[u8], ended: bool) -> Result<Option<Entry>, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let problem = |message: String| Problem {
        at: at.clone(),
        message,
        not_a_journal: false,
    };
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) if !ended => {
            return Err(problem(format!(
                "truncated last line (the file ends without a newline, in the middle of an event): {e}"
            )));
        }
        Err(e) if e.is_eof() => return Err(problem(format!("truncated line: {e}"))),
        Err(e) => return Err(problem(format!("not JSON: {e}"))),
    };
    let Value::Object(obj) = &value else {
        return Err(problem("not a JSON object".to_string()));
    };
    let ts = match obj.get("ts") {
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| problem(format!("`ts` {s:?} is not an RFC 3339 time: {e}")))?
            .with_timezone(&Utc),
        Some(_) => return Err(problem("`ts` is not a string".to_string())),
        None => return Err(problem("no `ts`".to_string())),
    };
    let kind = match obj.get("kind") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(problem("`kind` is not a string".to_string())),
        None => return Err(problem("no `kind`".to_string())),
    };
    let source = obj.get("source").and_then(Value::as_str).map(String::from);
    let host = obj.get("host").and_then(Value::as_str).map(String::from);
    let machine_id = obj
        .get("machine_id")
        .and_then(Value::as_str)
        .map(String::from);
    let data = data(&kind, value).map_err(|m| problem(format!("{kind}: {m}")))?;
    Ok(Some(Entry {
        at,
        ts,
        kind,
        source,
        host,
        machine_id,
        data,
    }))
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn data(kind: &str, v: Value) -> Result<Data, String> {
    Ok(match kind {
        "rule_add" | "rule_del" | "route_add" | "route_del" | "route_replace" => {
            let c: Change = typed(v)?;
            let rule = kind.starts_with("rule");
            match (rule, c.rule.is_some(), c.route.is_some()) {
                (true, false, _) => return Err("no `rule` object".into()),
                (false, _, false) => return Err("no `route` object".into()),
                _ => {}
            }
            // A replacement adds a route (and `old` says what it replaced).
            let op = if kind.ends_with("_add") || kind == "route_replace" {
                Op::Add
            } else {
                Op::Del
            };
            Data::Change(op, Box::new(c))
        }
        "nexthop_add" | "nexthop_del" | "nexthop_replace" => {
            let c: Change = typed(v)?;
            if c.nexthop.is_none() {
                return Err("no `nexthop` object".into());
            }
            // A replacement adds an object (and `old_nexthop` says what
            // it replaced), as a route_replace does.
            let op = if kind == "nexthop_del" {
                Op::Del
            } else {
                Op::Add
            };
            Data::Change(op, Box::new(c))
        }
        "snapshot" => {
            let s: StateEntry = typed(v)?;
            if s.rule.is_none() && s.route.is_none() {
                return Err("neither a `rule` nor a `route` object".into());
            }
            Data::Snapshot(Box::new(s))
        }
        "snapshot_end" => Data::SnapshotEnd(typed(v)?),
        "loop" => Data::Loop(LoopPhase::Start, Box::new(typed(v)?)),
        "loop_summary" => Data::Loop(LoopPhase::Summary, Box::new(typed(v)?)),
        "loop_end" => Data::Loop(LoopPhase::End, Box::new(typed(v)?)),
        "lost" => Data::Lost(typed(v)?),
        "ready" => Data::Ready(typed(v)?),
        "journal_error" | "journal_resumed" => Data::Journal(typed(v)?),
        _ => Data::Other(v),
    })
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
