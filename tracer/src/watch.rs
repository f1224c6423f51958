//! `tracer watch`: load and attach, watch the namespaces, correlate, enrich
//! and write events until SIGINT/SIGTERM.
use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::mpsc::unbounded_channel,
};
use tracer_common::EventHeader;

use crate::{
    bpf::{
        ladder::{Hook, Mechanism},
        loader::{self, KernelFacts},
    },
    cli::WatchArgs,
    collect::{
        NsInput,
        namespaces::Namespaces,
        record::{Record, parse},
    },
    correlate::{Engine, Object, Outcome, RequestScope},
    enrich::Enricher,
    event::{Body, Change, Event, Kind, Lost, Netns, Process, Ready, Source, format_ts},
    filter::Filter,
    netlink::{names::TableNames, socket::DumpKind},
    output::{escape::comm_from_bytes, sink::Sink},
};

/// How long collection goes on after SIGINT/SIGTERM.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// Converts bpf_ktime_get_boot_ns() stamps to wall-clock time.
pub struct Clock {
    /// Wall-clock minus boot-clock, in nanoseconds.
    offset_ns: i128,
}

impl Clock {
    pub fn new() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id and out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let boot = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        let wall = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
        Clock {
            offset_ns: wall - boot,
        }
    }

    pub fn wall(&self, boot_ns: Option<u64>) -> String {
        let t = match boot_ns {
            Some(b) if b > 0 => {
                let ns = self.offset_ns + b as i128;
                chrono::DateTime::from_timestamp(
                    (ns / 1_000_000_000) as i64,
                    (ns % 1_000_000_000) as u32,
                )
                .unwrap_or_else(chrono::Utc::now)
            }
            _ => chrono::Utc::now(),
        };
        format_ts(t)
    }
}

/// Fail early, in one line, without the privileges loading eBPF needs.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    bail!(
        "tracer needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN) to load eBPF programs and enter network namespaces; run it with sudo"
    )
}

/// Which changes come from tracepoint requests, given the chosen hooks.
fn scope(hooks: &BTreeMap<Hook, (Mechanism, Option<String>)>) -> RequestScope {
    let tp = |h: Hook| {
        hooks
            .get(&h)
            .is_none_or(|(m, _)| *m == Mechanism::Tracepoint)
    };
    RequestScope {
        route4_add: tp(Hook::Route4Add),
        route4_del: tp(Hook::Route4Del),
        route6_add: tp(Hook::Route6Add),
        route6_del: tp(Hook::Route6Del),
        rule_add: tp(Hook::RuleAdd),
        rule_del: tp(Hook::RuleDel),
        flush_from_notifications: tp(Hook::Route4Flush),
    }
}

/// Turns outcomes into events: process, cgroup/unit, namespace and table names.
struct Presenter {
    clock: Clock,
    enricher: Enricher,
    tables: TableNames,
    /// exe/cgroup/unit per (pid, cgroup id), so bursts cost one /proc read.
    cache: HashMap<(u32, u64), (Option<String>, Option<String>, Option<String>, Instant)>,
}

impl Presenter {
    fn process(&mut self, h: &EventHeader) -> Process {
        let key = (h.pid, h.cgroup_id);
        let now = Instant::now();
        let fresh = self
            .cache
            .get(&key)
            .filter(|c| now.duration_since(c.3) < Duration::from_secs(2))
            .cloned();
        let (exe, cgroup, unit) = match fresh {
            Some((e, c, u, _)) => (e, c, u),
            None => {
                let exe = self.enricher.processes.exe(h.pid);
                let (cgroup, unit) = match self.enricher.cgroups.as_mut() {
                    Some(r) => (r.resolve(h.cgroup_id), r.unit(h.cgroup_id)),
                    None => (None, None),
                };
                if self.cache.len() > 4096 {
                    self.cache.clear();
                }
                self.cache
                    .insert(key, (exe.clone(), cgroup.clone(), unit.clone(), now));
                (exe, cgroup, unit)
            }
        };
        let parent = comm_from_bytes(&h.parent_comm);
        Process {
            pid: h.pid,
            tid: h.tid,
            comm: comm_from_bytes(&h.comm),
            ppid: (h.ppid != 0).then_some(h.ppid),
            parent_comm: (!parent.is_empty()).then_some(parent),
            exe,
            uid: h.uid,
            cgroup,
            unit,
        }
    }

    fn netns(&mut self, inode: u32) -> Netns {
        Netns {
            inode: (inode != 0).then_some(inode),
            name: self.enricher.netns.name(inode),
        }
    }

    fn event(&mut self, o: Outcome) -> Event {
        let process = o.who.as_ref().map(|h| self.process(h));
        let netns = self.netns(o.netns);
        let (kind, rule, route) = match o.object {
            Object::Route(mut r) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                (Kind::route(o.op), None, Some(r))
            }
            Object::Rule(mut r) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                (Kind::rule(o.op), Some(r), None)
            }
        };
        Event {
            ts: self.clock.wall(o.ts_boot_ns),
            kind,
            source: o.source,
            body: Body::Change(Box::new(Change {
                process,
                netns,
                rule,
                route,
                result: o.result,
                cause: o.cause,
                nl_seq: o.nl_seq,
                note: o.note,
            })),
        }
    }

    fn lost(&self, source: Source, count: u64, location: &str) -> Event {
        Event {
            ts: self.clock.wall(None),
            kind: Kind::Lost,
            source,
            body: Body::Lost(Lost {
                count,
                location: location.to_string(),
            }),
        }
    }
}

/// Dump links and routes of a newly watched namespace into the mirror.
fn seed(spaces: &mut Namespaces, engine: &mut Engine, netns: u32) -> Result<()> {
    let Some(w) = spaces.watched.get_mut(&netns) else {
        return Ok(());
    };
    let links = w.dump(DumpKind::Links)?;
    let routes = w.dump(DumpKind::Routes)?;
    engine.mirror(netns).load_links(&links);
    engine.resynced(netns, &routes, None);
    Ok(())
}

pub async fn run(args: WatchArgs) -> Result<()> {
    require_root()?;
    let mut sink = Sink::open(args.json, args.output.as_deref())?;
    let tables = TableNames::load();
    let filter = Filter::from_args(&args, &tables)?;
    let (tx, mut rx) = unbounded_channel();
    let mut spaces = Namespaces::new(args.netns.clone(), tx);
    spaces.check_names()?;

    let facts = KernelFacts::gather()?;
    let loaded = loader::load(&facts, args.attach)?;
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    let hooks = loaded.hooks.clone();
    let primary = hooks
        .values()
        .map(|(m, _)| *m)
        .min()
        .unwrap_or(Mechanism::Tracepoint)
        .source();
    let mut engine = Engine::new(scope(&hooks));
    let enricher = Enricher::new().context("reading /proc for process enrichment")?;
    let mut p = Presenter {
        clock: Clock::new(),
        enricher,
        tables,
        cache: HashMap::new(),
    };

    for ns in spaces.rescan() {
        seed(&mut spaces, &mut engine, ns).with_context(|| format!("dumping namespace {ns}"))?;
    }
    let mut namespaces: Vec<Netns> = spaces.watched.keys().map(|i| p.netns(*i)).collect();
    namespaces.sort_by_key(|n| (n.name.clone(), n.inode));
    let ready = Event {
        ts: p.clock.wall(None),
        kind: Kind::Ready,
        source: primary,
        body: Body::Ready(Ready {
            hooks: hooks
                .iter()
                .map(|(h, (m, _))| (h.name().to_string(), m.source()))
                .collect(),
            functions: hooks
                .iter()
                .filter_map(|(h, (_, f))| f.clone().map(|f| (h.name().to_string(), f)))
                .collect(),
            kernel: facts.features.release.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            namespaces,
        }),
    };
    sink.write(&ready)?;
    sink.flush()?;

    // SAFETY: the RingBuf owns its map fd and the AsyncFd owns the RingBuf,
    // so the fd stays open and the same for the AsyncFd's whole life.
    let mut ring = unsafe { AsyncFd::register(loaded.ring) }
        .map_err(|e| e.into_parts().1)
        .context("polling the ring buffer")?;
    let dropped = loaded.dropped;
    let mut last_dropped = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut slow = tokio::time::interval(Duration::from_millis(500));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // After SIGINT/SIGTERM, keep collecting briefly so that changes already
    // made (and re-reads already planned) are reported before exit.
    let mut stop_at: Option<Instant> = None;
    // Waits expire only once both inputs are drained: under a burst the
    // other half of a change may still be queued, however old it is.
    let mut ring_backlog = false;

    loop {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                let now = Instant::now();
                let mut n = 0;
                while let Some(item) = rb.next() {
                    match parse(&item) {
                        Ok(Record::Exec { hdr, filename }) => {
                            p.enricher.processes.note_exec(hdr.pid, String::from_utf8_lossy(&filename).into_owned());
                            p.cache.retain(|k, _| k.0 != hdr.pid);
                        }
                        Ok(rec) => engine.record(rec, now),
                        Err(e) => log::warn!("skipping a malformed record: {e}"),
                    }
                    n += 1;
                    if n >= 4096 {
                        break;
                    }
                }
                ring_backlog = n >= 4096;
                if !ring_backlog {
                    guard.clear_ready();
                }
            }
            Some(input) = rx.recv() => {
                let now = Instant::now();
                match input {
                    NsInput::Notify { netns, items } => {
                        for i in items {
                            engine.notification(netns, i, now);
                        }
                    }
                    NsInput::Overflow { netns } => {
                        sink.write(&p.lost(Source::Netlink, 1, "netlink_socket"))?;
                        if let Some(w) = spaces.watched.get_mut(&netns) {
                            if let Ok(routes) = w.dump(DumpKind::Routes) {
                                engine.resynced(netns, &routes, None);
                            }
                        }
                    }
                    NsInput::Failed { netns, error } => log::warn!("namespace {netns}: {error}"),
                }
            }
            _ = tick.tick(), if !ring_backlog && rx.is_empty() => {
                let now = Instant::now();
                for (netns, cause) in engine.tick(now) {
                    if let Some(w) = spaces.watched.get_mut(&netns) {
                        match w.dump(DumpKind::Routes) {
                            Ok(routes) => engine.resynced(netns, &routes, cause),
                            Err(e) => log::warn!("re-reading routes of namespace {netns}: {e:#}"),
                        }
                    }
                }
            }
            _ = slow.tick() => {
                let before: Vec<u32> = spaces.watched.keys().copied().collect();
                for ns in spaces.rescan() {
                    if let Err(e) = seed(&mut spaces, &mut engine, ns) {
                        log::warn!("namespace {ns}: {e:#}");
                    }
                }
                for gone in before.iter().filter(|n| !spaces.watched.contains_key(n)) {
                    engine.forget(*gone);
                }
                let total: u64 = dropped.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(last_dropped);
                if total > last_dropped {
                    sink.write(&p.lost(primary, total - last_dropped, "ring_buffer"))?;
                    last_dropped = total;
                }
            }
            _ = sigint.recv(), if stop_at.is_none() => stop_at = Some(Instant::now() + STOP_GRACE),
            _ = sigterm.recv(), if stop_at.is_none() => stop_at = Some(Instant::now() + STOP_GRACE),
        }
        for o in engine.take_outcomes() {
            let e = p.event(o);
            if filter.pass(&e) {
                sink.write(&e)?;
            }
        }
        sink.flush()?;
        if sink.closed() {
            break;
        }
    }

    // Records already in the ring buffer belong to this session.
    let now = Instant::now();
    let rb = ring.get_mut();
    while let Some(item) = rb.next() {
        if let Ok(rec) = parse(&item) {
            engine.record(rec, now);
        }
    }
    while let Ok(input) = rx.try_recv() {
        if let NsInput::Notify { netns, items } = input {
            for i in items {
                engine.notification(netns, i, now);
            }
        }
    }
    engine.drain(now);
    for o in engine.take_outcomes() {
        let e = p.event(o);
        if filter.pass(&e) {
            sink.write(&e)?;
        }
    }
    sink.flush()
}
