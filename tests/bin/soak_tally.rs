//! soak_tally: counts the JSON lines one tracer writes during
//! bench/soak.sh, fast enough that the
//! soak's churn of 20,000 changes/s is not slowed by its own bookkeeping.
//!
//!   soak_tally NAME OUT PREFIX                 lines from stdin
//!   soak_tally NAME OUT PREFIX --journal DIR   the journal's files
//!
//! PREFIX names the soak's namespaces: `PREFIX-c1`.. are churned (their
//! changes in table 100 are counted, per namespace and kind), `PREFIX-r` is
//! the lab router and `PREFIX-eN` the short-lived namespaces. Every 0.25 s,
//! and at the end, the counts go to OUT/NAME.state.json (read by
//! bench/soak_sample.py and bench/soak_verdict.py). The lines about the lab
//! and the short-lived namespaces go whole to OUT/NAME.lab.jsonl, the rare
//! kinds (ready, lost, loops, journal health, guard) to
//! OUT/NAME.notable.jsonl, the first 200 churned
//! changes that are not ok or out of turn to OUT/NAME.odd.jsonl, the
//! [`CONTEXT_LINES`] lines before the first of those and as many after it
//! to OUT/NAME.context.jsonl (what the tracer said around it, whatever
//! its kind), and with SOAK_KEEP=1 every line to OUT/NAME.all.jsonl.
//!
//! "Out of turn": each churned route is added, maybe replaced, then
//! removed, again and again; a route added twice in a row, removed twice,
//! or replaced while absent was reported out of the kernel's order (or
//! twice, or not at all).
//!
//! With --journal, a file is opened as soon as it is seen (its lines stay
//! readable after retention removes it) and read once a newer file exists
//! (the recorder never writes a file again once it started the next; the
//! newest may still be cut back after a failed write); once OUT/journal.stop
//! exists, every file is read to its end and the tally ends.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    io::{Read, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const CHANGE_KINDS: [&[u8]; 5] = [
    b"route_add",
    b"route_del",
    b"route_replace",
    b"rule_add",
    b"rule_del",
];
/// Kinds parsed whole and kept in NAME.notable.jsonl.
const NOTABLE: [&[u8]; 8] = [
    b"ready",
    b"loop",
    b"loop_end",
    b"lost",
    b"journal_error",
    b"journal_resumed",
    b"guard_violation",
    b"guard_restored",
];
const ODD_KEPT: u64 = 200;
/// Lines kept before and written after the first odd change.
const CONTEXT_LINES: usize = 5000;
/// How often the state file is written.
const SAVE_EVERY: Duration = Duration::from_millis(250);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = 0;
    while let Some(i) = hay[at..].iter().position(|b| *b == first) {
        let i = at + i;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

/// The string value starting right after `key` (which ends with `"`).
fn string_after<'a>(line: &'a [u8], key: &[u8]) -> Option<(&'a [u8], usize)> {
    let i = find(line, key)? + key.len();
    let n = line[i..].iter().position(|b| *b == b'"')?;
    Some((&line[i..i + n], i + n))
}

fn number(s: &[u8]) -> Option<u64> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&s[..n]).ok()?.parse().ok()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The lines around the first odd change: the last [`CONTEXT_LINES`] are
/// kept until one comes, then written with as many after it.
struct Context {
    path: PathBuf,
    recent: std::collections::VecDeque<Vec<u8>>,
    /// Once triggered: the file, and how many lines are still to go in.
    after: Option<(File, usize)>,
}

impl Context {
    fn new(path: PathBuf) -> Context {
        Context {
            path,
            recent: std::collections::VecDeque::with_capacity(CONTEXT_LINES),
            after: None,
        }
    }

    /// Every line, before it is looked at.
    fn line(&mut self, line: &[u8]) {
        match self.after.as_mut() {
            Some((f, left)) if *left > 0 => {
                *left -= 1;
                let _ = f.write_all(line);
                let _ = f.write_all(b"\n");
            }
            Some(_) => {}
            None => {
                let mut buf = if self.recent.len() >= CONTEXT_LINES {
                    self.recent.pop_front().unwrap_or_default()
                } else {
                    Vec::new()
                };
                buf.clear();
                buf.extend_from_slice(line);
                self.recent.push_back(buf);
            }
        }
    }

    /// An odd change (the last line given): the first writes what came
    /// before it, itself included.
    fn odd(&mut self) {
        if self.after.is_some() {
            return;
        }
        let Ok(mut f) = File::create(&self.path) else {
            return;
        };
        for l in self.recent.drain(..) {
            let _ = f.write_all(&l);
            let _ = f.write_all(b"\n");
        }
        self.after = Some((f, CONTEXT_LINES));
    }
}

struct Tally {
    name: String,
    out: PathBuf,
    /// `"name":"PREFIX-`
    name_key: Vec<u8>,
    lines: u64,
    bytes: u64,
    kinds: HashMap<Vec<u8>, u64>,
    churn: BTreeMap<String, BTreeMap<String, u64>>,
    churn_other_tables: u64,
    churn_no_process: u64,
    churn_not_ok: u64,
    churn_out_of_turn: u64,
    /// (namespace, destination) -> the route's last change.
    routes: HashMap<(u8, Vec<u8>), u8>,
    lost: BTreeMap<String, u64>,
    lost_events: u64,
    journal_dropped: u64,
    watched: HashSet<u64>,
    ephemeral_new: HashSet<String>,
    ephemeral_gone: HashSet<String>,
    loops: Vec<Value>,
    guard: BTreeMap<String, u64>,
    ready: Value,
    odd: u64,
    eof: bool,
    files: Option<u64>,
    missed_files: u64,
    lab: File,
    notable: File,
    odd_file: File,
    context: Context,
    all: Option<File>,
    last_save: Instant,
}

impl Tally {
    fn new(name: &str, out: &Path, prefix: &str) -> Tally {
        let open = |suffix: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out.join(format!("{name}.{suffix}")))
                .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        };
        Tally {
            name: name.to_string(),
            out: out.to_path_buf(),
            name_key: format!("\"name\":\"{prefix}-").into_bytes(),
            lines: 0,
            bytes: 0,
            kinds: HashMap::new(),
            churn: BTreeMap::new(),
            churn_other_tables: 0,
            churn_no_process: 0,
            churn_not_ok: 0,
            churn_out_of_turn: 0,
            routes: HashMap::new(),
            lost: BTreeMap::new(),
            lost_events: 0,
            journal_dropped: 0,
            watched: HashSet::new(),
            ephemeral_new: HashSet::new(),
            ephemeral_gone: HashSet::new(),
            loops: Vec::new(),
            guard: BTreeMap::new(),
            ready: Value::Null,
            odd: 0,
            eof: false,
            files: None,
            missed_files: 0,
            lab: open("lab.jsonl"),
            notable: open("notable.jsonl"),
            odd_file: open("odd.jsonl"),
            context: Context::new(out.join(format!("{name}.context.jsonl"))),
            all: (std::env::var("SOAK_KEEP").as_deref() == Ok("1")).then(|| open("all.jsonl")),
            last_save: Instant::now() - Duration::from_secs(2),
        }
    }

    /// Complete lines (each ending in a newline).
    fn chunk(&mut self, data: &[u8]) {
        if let Some(f) = self.all.as_mut() {
            let _ = f.write_all(data);
        }
        for line in data.split(|b| *b == b'\n') {
            if !line.is_empty() {
                self.line(line);
            }
        }
        let _ = self.lab.flush();
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.save();
        }
    }

    fn line(&mut self, line: &[u8]) {
        self.context.line(line);
        self.lines += 1;
        self.bytes += line.len() as u64 + 1;
        let Some(k) = find(&line[..line.len().min(64)], b"\",\"kind\":\"") else {
            return;
        };
        let k = k + 10;
        let Some(n) = line[k..].iter().position(|b| *b == b'"') else {
            return;
        };
        let kind = &line[k..k + n];
        match self.kinds.get_mut(kind) {
            Some(c) => *c += 1,
            None => {
                self.kinds.insert(kind.to_vec(), 1);
            }
        }
        // The lab router's and the short-lived namespaces' lines, whole.
        let mut at = 0;
        while let Some(i) = find(&line[at..], &self.name_key) {
            let rest = &line[at + i + self.name_key.len()..];
            if rest.starts_with(b"r\"")
                || (rest.first() == Some(&b'e')
                    && rest[1..].iter().take_while(|b| b.is_ascii_digit()).count() > 0)
            {
                let _ = self.lab.write_all(line);
                let _ = self.lab.write_all(b"\n");
                break;
            }
            at += i + 1;
        }
        if CHANGE_KINDS.contains(&kind) {
            self.change(line, kind);
        } else if NOTABLE.contains(&kind) {
            self.rare(line, kind);
        } else if (kind == b"netns_new" || kind == b"netns_gone")
            && let Ok(e) = serde_json::from_slice::<Value>(line)
        {
            let ino = e["netns"]["inode"].as_u64().unwrap_or(0);
            let name = e["netns"]["name"].as_str().unwrap_or("").to_string();
            let ephemeral = name.as_bytes().starts_with(&self.name_key[8..])
                && name.as_bytes().get(self.name_key.len() - 8) == Some(&b'e');
            if kind == b"netns_new" {
                self.watched.insert(ino);
                if ephemeral {
                    self.ephemeral_new.insert(name);
                }
            } else {
                self.watched.remove(&ino);
                if ephemeral {
                    self.ephemeral_gone.insert(name);
                }
            }
        }
    }

    /// A change: counted if it is in a churned namespace's table 100.
    fn change(&mut self, line: &[u8], kind: &[u8]) {
        let Some(n) = find(line, b"\"netns\":{\"inode\":") else {
            return;
        };
        let Some((name, end)) = string_after(&line[n..], b"\"name\":\"") else {
            return;
        };
        let Some(ns) = name.strip_prefix(&self.name_key[8..]) else {
            return;
        };
        if ns.len() < 2 || ns[0] != b'c' {
            return;
        }
        let body = &line[n + end..];
        let route = body.starts_with(b"\"},\"route\":{");
        if !route && !body.starts_with(b"\"},\"rule\":{") {
            return;
        }
        let table = find(body, b"\"table\":").and_then(|i| number(&body[i + 8..]));
        if table != Some(100) {
            self.churn_other_tables += 1;
            return;
        }
        let ns_name = text(ns);
        *self
            .churn
            .entry(ns_name)
            .or_default()
            .entry(text(kind))
            .or_default() += 1;
        if find(&line[..n], b"\"process\":null").is_some() {
            self.churn_no_process += 1;
        }
        let ok = find(body, b"\"result\":\"ok\"").is_some();
        if !ok {
            self.churn_not_ok += 1;
            self.keep_odd(line);
        }
        if route && let Some((dst, _)) = string_after(body, b"\"dst\":\"") {
            let code = |k: &[u8]| match k {
                b"route_add" => 1u8,
                b"route_replace" => 2,
                _ => 0,
            };
            let key = (ns[1], dst.to_vec());
            let was = self.routes.get(&key).copied().unwrap_or(0);
            let in_turn = match code(kind) {
                2 => was != 0,
                c => {
                    self.routes.insert(key, c);
                    (was == 0) != (c == 0)
                }
            };
            if !in_turn {
                self.churn_out_of_turn += 1;
                self.keep_odd(line);
            }
        }
    }

    fn keep_odd(&mut self, line: &[u8]) {
        self.context.odd();
        self.odd += 1;
        if self.odd <= ODD_KEPT {
            let _ = self.odd_file.write_all(line);
            let _ = self.odd_file.write_all(b"\n");
        }
    }

    fn rare(&mut self, line: &[u8], kind: &[u8]) {
        let _ = self.notable.write_all(line);
        let _ = self.notable.write_all(b"\n");
        let Ok(e) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        match kind {
            b"ready" => {
                let spaces = e["namespaces"].as_array().cloned().unwrap_or_default();
                self.watched = spaces.iter().filter_map(|n| n["inode"].as_u64()).collect();
                self.ready = json!({"pid": e["pid"], "namespaces": spaces.len()});
            }
            b"loop" => self.loops.push(json!({
                "ts": e["ts"],
                "netns": e["netns"]["name"],
                "iface": e["iface"],
                "dst": e["original"]["dst"],
                "icmp_id": e["original"]["icmp_id"],
                "suspect": e["suspect"]["route"]["dst"],
            })),
            b"lost" => {
                let loc = e["location"].as_str().unwrap_or("?").to_string();
                *self.lost.entry(loc).or_default() += e["count"].as_u64().unwrap_or(0);
                self.lost_events += 1;
            }
            b"journal_resumed" => self.journal_dropped += e["dropped"].as_u64().unwrap_or(0),
            b"guard_violation" | b"guard_restored" => {
                *self.guard.entry(text(kind)).or_default() += 1;
            }
            _ => {}
        }
    }

    fn state(&self) -> Value {
        let kinds: BTreeMap<String, u64> = self.kinds.iter().map(|(k, v)| (text(k), *v)).collect();
        json!({
            "name": self.name,
            "lines": self.lines,
            "bytes": self.bytes,
            "kinds": kinds,
            "churn": self.churn,
            "churn_changes": self.churn.values().flat_map(|c| c.values()).sum::<u64>(),
            "churn_other_tables": self.churn_other_tables,
            "churn_no_process": self.churn_no_process,
            "churn_not_ok": self.churn_not_ok,
            "churn_out_of_turn": self.churn_out_of_turn,
            "lost": self.lost,
            "lost_events": self.lost_events,
            "journal_dropped": self.journal_dropped,
            "watched": self.watched.len(),
            "ephemeral_new": self.ephemeral_new.len(),
            "ephemeral_gone": self.ephemeral_gone.len(),
            "loops": self.loops,
            "guard": self.guard,
            "ready": self.ready,
            "eof": self.eof,
            "files": self.files,
            "missed_files": self.missed_files,
        })
    }

    fn save(&mut self) {
        self.last_save = Instant::now();
        let _ = self.notable.flush();
        let _ = self.odd_file.flush();
        let path = self.out.join(format!("{}.state.json", self.name));
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(&self.state()).expect("state JSON");
        if std::fs::write(&tmp, body).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

/// Lines from stdin, a pipe of 1 MiB (not 64 KiB: the tracer writes its
/// 1 MiB buffer at once), read in large pieces.
fn stream(t: &mut Tally) {
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    // SAFETY: F_SETPIPE_SZ on our own descriptor; failure is harmless.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
    let mut input = stdin.lock();
    let mut buf = vec![0u8; 1 << 20];
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 500) } == 0 {
            if t.last_save.elapsed() >= SAVE_EVERY {
                t.save();
            }
            continue;
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading stdin: {e}"),
        };
        rest.extend_from_slice(&buf[..n]);
        if let Some(cut) = rest.iter().rposition(|b| *b == b'\n') {
            let tail = rest.split_off(cut + 1);
            t.chunk(&rest);
            rest = tail;
        }
        if n < 1 << 18 {
            // Little came: let more gather rather than wake for a few lines.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if !rest.is_empty() {
        rest.push(b'\n');
        t.chunk(&rest);
    }
    t.eof = true;
    t.save();
}

fn journal(t: &mut Tally, dir: &Path) {
    let stop = t.out.join("journal.stop");
    let mut open: BTreeMap<String, File> = BTreeMap::new();
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let stopping = stop.exists();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with("tracer-") && n.ends_with(".jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for n in &names {
            if !open.contains_key(n) && !done.contains(n) {
                match File::open(dir.join(n)) {
                    Ok(f) => {
                        open.insert(n.clone(), f);
                    }
                    Err(_) => t.missed_files += 1,
                }
            }
        }
        let newest = names.last().cloned().max(open.keys().last().cloned());
        let ready: Vec<String> = open
            .keys()
            .filter(|n| stopping || Some(*n) != newest.as_ref())
            .cloned()
            .collect();
        for n in ready {
            let mut f = open.remove(&n).expect("listed");
            let mut data = Vec::new();
            let _ = f.read_to_end(&mut data);
            if !data.is_empty() && !data.ends_with(b"\n") {
                t.keep_odd(format!("{{\"partial_last_line_in\":\"{n}\"}}").as_bytes());
                data.push(b'\n');
            }
            t.chunk(&data);
            done.insert(n);
        }
        if stopping {
            break;
        }
        if t.last_save.elapsed() >= SAVE_EVERY {
            t.save();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    t.eof = true;
    t.files = Some(done.len() as u64);
    t.save();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 && !(args.len() == 5 && args[3] == "--journal") {
        eprintln!("usage: soak_tally NAME OUT PREFIX [--journal DIR]");
        std::process::exit(2);
    }
    let mut t = Tally::new(&args[0], Path::new(&args[1]), &args[2]);
    if args.len() == 5 {
        journal(&mut t, Path::new(&args[4]));
    } else {
        stream(&mut t);
    }
}
