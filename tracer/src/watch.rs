//! `tracer watch`: load and attach, watch the namespaces, correlate, enrich
//! and write events until SIGINT/SIGTERM.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::mpsc::channel,
    time::MissedTickBehavior,
};
use tracer_common::EventHeader;

use crate::{
    bpf::{
        ladder::{Hook, Mechanism},
        loader::{self, KernelFacts},
        packet_hooks::PacketHooks,
        ring::RingReader,
    },
    cli::WatchArgs,
    collect::{
        NsInput,
        namespaces::Namespaces,
        record::{Record, parse},
    },
    correlate::{Engine, Object, Outcome, RequestScope},
    enrich::Enricher,
    event::{
        Body, Change, Event, Kind, Lost, Netns, Op, Process, Ready, SnapshotEnd, Source,
        StateEntry, WatchedIface, format_ts,
    },
    filter::Filter,
    journal::write::Journal,
    metrics::Metrics,
    netlink::{
        decode::{NlItem, NlObj},
        names::TableNames,
        socket::DumpKind,
    },
    output::{
        escape::comm_from_bytes,
        fanout::Outputs,
        sink::{Show, Sink},
    },
    packet::{
        path::{NsView, PacketPath},
        watchlist::{WatchChange, WatchList},
    },
};

/// Ring-buffer records decoded per wake-up before other inputs get a turn.
const RING_BATCH: usize = 64;
/// Requests (route/rule changes) read ahead of their notifications beyond
/// which, while notifications are queued, the ring buffer is left to hold
/// the backlog (kernel memory) rather than the tracer's heap.
const READ_AHEAD: usize = 4096;

/// Whether to read the ring buffer now. Requests read from it wait in
/// memory for their notifications; so while notifications are queued and
/// enough requests wait already, the backlog is left in the ring, unless
/// the ring is three-quarters full (losing records would lose processes).
fn read_ring_now(ring: &RingReader, waiting: usize, notifications_queued: bool) -> bool {
    waiting < READ_AHEAD || !notifications_queued || ring.pending_bytes() > ring.size() / 4 * 3
}

/// How long collection goes on after SIGINT/SIGTERM.
const STOP_GRACE: Duration = Duration::from_millis(300);
/// How often the packet path drains the records that do not wake the
/// tracer and reports what is due (a loop whose FIB lookups did not come
/// within the detector's 100 ms is reported at the next tick).
const PKT_TICK: Duration = Duration::from_millis(100);

/// Converts bpf_ktime_get_boot_ns() stamps to wall-clock time.
pub struct Clock {
    /// Wall-clock minus boot-clock, in nanoseconds.
    offset_ns: i128,
}

impl Clock {
    pub fn new() -> Self {
        let boot = Self::boot_now_ns() as i128;
        let wall = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
        Clock {
            offset_ns: wall - boot,
        }
    }

    /// CLOCK_BOOTTIME now, in nanoseconds (the eBPF timestamps' clock).
    pub fn boot_now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id and out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Wall-clock nanoseconds since the epoch of a boot-clock stamp.
    pub fn unix_ns(&self, boot_ns: u64) -> i128 {
        self.offset_ns + boot_ns as i128
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
    /// The process per (pid, cgroup id), so bursts cost one /proc read and
    /// no re-escaping of names.
    cache: HashMap<(u32, u64), Cached>,
}

/// A process as last presented, with the header fields it was built from.
struct Cached {
    process: Arc<Process>,
    tid: u32,
    ppid: u32,
    uid: u32,
    comm: [u8; 16],
    parent_comm: [u8; 16],
    at: Instant,
}

impl Presenter {
    fn process(&mut self, h: &EventHeader, now: Instant) -> Arc<Process> {
        let key = (h.pid, h.cgroup_id);
        if let Some(c) = self.cache.get(&key)
            && now.duration_since(c.at) < Duration::from_secs(2)
        {
            if c.tid == h.tid
                && c.ppid == h.ppid
                && c.uid == h.uid
                && c.comm == h.comm
                && c.parent_comm == h.parent_comm
            {
                return c.process.clone();
            }
            // Another thread, or the process changed its name: the exe,
            // cgroup and unit still hold.
            let c = &*c.process;
            let (exe, cgroup, unit) = (c.exe.clone(), c.cgroup.clone(), c.unit.clone());
            return self.remember(h, exe, cgroup, unit, now);
        }
        let exe = self.enricher.processes.exe(h.pid);
        let (cgroup, unit) = match self.enricher.cgroups.as_mut() {
            Some(r) => (r.resolve(h.cgroup_id), r.unit(h.cgroup_id)),
            None => (None, None),
        };
        self.remember(h, exe, cgroup, unit, now)
    }

    fn remember(
        &mut self,
        h: &EventHeader,
        exe: Option<String>,
        cgroup: Option<String>,
        unit: Option<String>,
        now: Instant,
    ) -> Arc<Process> {
        let parent = comm_from_bytes(&h.parent_comm);
        let process = Arc::new(Process {
            pid: h.pid,
            tid: h.tid,
            comm: comm_from_bytes(&h.comm),
            ppid: (h.ppid != 0).then_some(h.ppid),
            parent_comm: (!parent.is_empty()).then_some(parent),
            exe,
            uid: h.uid,
            cgroup,
            unit,
        });
        if self.cache.len() > 4096 {
            self.cache.clear();
        }
        self.cache.insert(
            (h.pid, h.cgroup_id),
            Cached {
                process: process.clone(),
                tid: h.tid,
                ppid: h.ppid,
                uid: h.uid,
                comm: h.comm,
                parent_comm: h.parent_comm,
                at: now,
            },
        );
        process
    }

    fn netns(&mut self, inode: u32) -> Netns {
        self.netns_at(inode, Instant::now())
    }

    fn netns_at(&mut self, inode: u32, now: Instant) -> Netns {
        Netns {
            inode: (inode != 0).then_some(inode),
            name: self.enricher.netns.name_at(inode, now),
        }
    }

    /// The event of an outcome; `now` is the time of the batch.
    fn event(&mut self, o: Outcome, now: Instant) -> Event {
        let process = o.who.as_ref().map(|h| self.process(h, now));
        let netns = self.netns_at(o.netns, now);
        let old = o.replaced.map(|mut r| {
            r.table_name = r.table.and_then(|t| self.tables.name(t));
            r
        });
        let (kind, rule, route) = match o.object {
            Object::Route(mut r) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                let kind = match (&old, o.op) {
                    (Some(_), Op::Add) => Kind::RouteReplace,
                    _ => Kind::route(o.op),
                };
                (kind, None, Some(r))
            }
            Object::Rule(mut r) => {
                r.table_name = r.table.and_then(|t| self.tables.name(t));
                (Kind::rule(o.op), Some(*r), None)
            }
        };
        Event {
            // A change no record saw is as old as its notification.
            ts: self.clock.wall(o.ts_boot_ns.or_else(|| {
                o.seen.map(|at| {
                    let ago = now.saturating_duration_since(at).as_nanos() as u64;
                    Clock::boot_now_ns().saturating_sub(ago)
                })
            })),
            kind,
            source: o.source,
            body: Body::Change(Box::new(Change {
                process,
                netns,
                rule,
                route,
                result: o.result,
                cause: o.cause,
                old,
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

/// Dump links and routes (and addresses, for the packet path) of a newly
/// watched namespace into the mirror.
fn seed(
    spaces: &mut Namespaces,
    engine: &mut Engine,
    packets: Option<&mut PacketPath>,
    netns: u32,
) -> Result<()> {
    let Some(w) = spaces.watched.get_mut(&netns) else {
        return Ok(());
    };
    let links = w.dump(DumpKind::Links)?;
    if let Some(pp) = packets {
        pp.load_addrs(netns, &w.dump(DumpKind::Addresses)?);
    }
    engine.mirror(netns).load_links(&links);
    engine.resync(netns, None, |each| w.dump_routes(each))
}

/// Writes one namespace's rules and routes as `snapshot` events, then its
/// `snapshot_end`.
fn snapshot(
    spaces: &mut Namespaces,
    engine: &Engine,
    p: &mut Presenter,
    netns: u32,
    out: &mut Outputs,
) -> Result<()> {
    let Some(w) = spaces.watched.get_mut(&netns) else {
        return Ok(());
    };
    let rules = w.dump(DumpKind::Rules)?;
    let routes = w.dump(DumpKind::Routes)?;
    let ns = p.netns(netns);
    let mirror = engine.mirror_of(netns);
    let (mut n_rules, mut n_routes) = (0, 0);
    let ts = p.clock.wall(None);
    for item in rules.into_iter().chain(routes) {
        let (rule, route) = match item.obj {
            NlObj::Rule { mut rule, .. } => {
                rule.table_name = rule.table.and_then(|t| p.tables.name(t));
                n_rules += 1;
                (Some(*rule), None)
            }
            NlObj::Route { mut route, .. } => {
                route.table_name = route.table.and_then(|t| p.tables.name(t));
                if route.dev.is_none() {
                    route.dev = route.ifindex.and_then(|i| mirror?.dev(i));
                }
                n_routes += 1;
                (None, Some(route))
            }
            _ => continue,
        };
        out.write(&Event {
            ts: ts.clone(),
            kind: Kind::Snapshot,
            source: Source::Netlink,
            body: Body::State(Box::new(StateEntry {
                netns: ns.clone(),
                rule,
                route,
            })),
        })?;
    }
    out.write(&Event {
        ts,
        kind: Kind::SnapshotEnd,
        source: Source::Netlink,
        body: Body::SnapshotEnd(SnapshotEnd {
            netns: ns,
            rules: n_rules,
            routes: n_routes,
        }),
    })
}

/// Re-resolves the --iface interfaces and logs what changed.
fn sync_ifaces(pp: &mut PacketPath, engine: &Engine, own: u32) {
    let changes = pp.sync(
        |name| match name {
            None => Some(own),
            Some(n) => std::fs::metadata(format!("{}/{n}", crate::enrich::netns::NETNS_RUN_DIR))
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m) as u32),
        },
        |netns| {
            engine.mirror_of(netns).map(|m| {
                m.links
                    .iter()
                    .filter_map(|(i, l)| Some((l.name.clone()?, *i)))
                    .collect()
            })
        },
    );
    for c in changes {
        match c {
            WatchChange::Added(spec, key, tc) => log::info!(
                "watching packets on {spec} (ifindex {}, netns {}) with {}",
                key.ifindex,
                key.netns,
                if tc {
                    "tc programs"
                } else {
                    "the packet tracepoints"
                }
            ),
            WatchChange::Removed(spec, _) => log::info!("{spec} is gone; waiting for it to return"),
        }
    }
}

/// Decodes up to `max` ring-buffer records; returns how many were read.
fn drain_ring(
    rb: &mut RingReader,
    engine: &mut Engine,
    p: &mut Presenter,
    mut packets: Option<&mut PacketPath>,
    max: usize,
) -> usize {
    let now = Instant::now();
    let read = rb.read(max, |item| match parse(item) {
        Ok(Record::Exec { hdr, filename }) => {
            p.enricher
                .processes
                .note_exec(hdr.pid, String::from_utf8_lossy(&filename).into_owned());
            p.cache.retain(|k, _| k.0 != hdr.pid);
        }
        Ok(Record::Packet(ev)) => {
            if let Some(pp) = packets.as_deref_mut() {
                pp.packet(&ev);
            }
        }
        Ok(Record::Lookup(ev)) => {
            if let Some(pp) = packets.as_deref_mut() {
                pp.lookup(&ev);
            }
        }
        Ok(rec) => engine.record(rec, now),
        Err(e) => log::warn!("skipping a malformed record: {e}"),
    });
    read.unwrap_or_else(|e| {
        log::warn!("reading the ring buffer: {e:#}");
        0
    })
}

/// Writes the events for the packet path's findings due now.
fn emit_findings(
    pp: &mut PacketPath,
    findings: Vec<crate::detect::Finding>,
    spaces: &mut Namespaces,
    engine: &Engine,
    p: &mut Presenter,
    out: &mut Outputs,
) -> Result<()> {
    for f in findings {
        let view = if PacketPath::needs_view(&f) {
            let info = crate::packet::path::finding_info(&f);
            let inode = info.netns;
            let w = spaces.watched.get_mut(&inode);
            let (rules, route_now) = match w {
                Some(w) => (
                    w.dump(DumpKind::Rules).ok(),
                    w.get_route(&crate::packet::path::route_query(info))
                        .map_err(|e| log::debug!("route query for a loop: {e:#}"))
                        .ok(),
                ),
                None => (None, None),
            };
            let rules = rules.map(|items| {
                items
                    .into_iter()
                    .filter_map(|i| match i.obj {
                        NlObj::Rule { rule, .. } => Some(*rule),
                        _ => None,
                    })
                    .collect()
            });
            Some(NsView {
                netns: p.netns(inode),
                mirror: engine.mirror_of(inode),
                rules,
                route_now,
            })
        } else {
            None
        };
        let e = pp.event(f, &p.clock, &p.tables, view);
        out.write(&e)?;
    }
    pp.write_capture(&p.clock)
}

/// Writes the correlator's finished changes. Every removal is also kept for
/// the packet path's suspects, whether or not the filters let it through
/// (`Outputs` applies them).
fn emit_outcomes(
    engine: &mut Engine,
    p: &mut Presenter,
    mut packets: Option<&mut PacketPath>,
    out: &mut Outputs,
) -> Result<()> {
    let now = Instant::now();
    for o in engine.take_outcomes() {
        let e = p.event(o, now);
        if let (Some(pp), Some(inode)) = (
            packets.as_deref_mut(),
            e.change().and_then(|c| c.netns.inode),
        ) {
            pp.removals.note(inode, &e);
        }
        out.write(&e)?;
    }
    Ok(())
}

/// Address and link notifications matter to the packet path: own addresses
/// recognise SNAT, links name the watched interfaces.
fn packet_notifications(pp: &mut PacketPath, netns: u32, items: &[NlItem]) -> bool {
    let mut links = false;
    for i in items {
        match &i.obj {
            NlObj::Addr { .. } => pp.addr_change(netns, i),
            NlObj::Link(_) => links = true,
            _ => {}
        }
    }
    links
}

/// `tracer watch`: every event to stdout (and `--output`).
pub async fn run(args: WatchArgs) -> Result<()> {
    require_root()?;
    let out = outputs(&args, Show::All, None).await?;
    session(args, out).await
}

/// The sink, filters, journal and metrics of a session.
pub async fn outputs(args: &WatchArgs, show: Show, journal: Option<Journal>) -> Result<Outputs> {
    let sink = Sink::open(args.json, args.output.as_deref(), show)?;
    let filter = Filter::from_args(args, &TableNames::load())?;
    let mut out = Outputs::new(sink, filter);
    if let Some(addr) = args.metrics {
        let m = Metrics::new(journal.is_some());
        let bound = crate::metrics::serve::start(addr, m.registry()).await?;
        log::info!("serving metrics on http://{bound}/metrics");
        out.metrics = Some(m);
    }
    out.journal = journal;
    Ok(out)
}

/// One tracing session: load and attach, seed the namespaces, then turn
/// kernel records and notifications into events for `out` until
/// SIGINT/SIGTERM. With a journal or a guard, the state is snapshotted
/// first.
pub async fn session(args: WatchArgs, mut out: Outputs) -> Result<()> {
    let tables = TableNames::load();
    let (tx, mut rx) = channel(crate::collect::NS_CHANNEL_BATCHES);
    let mut spaces = Namespaces::new(args.netns.clone(), tx);
    spaces.check_names()?;
    for spec in &args.iface {
        match &spec.netns {
            Some(ns) => spaces.also_watch(ns),
            None if !spaces.watches_own() => bail!(
                "--iface {spec} is in the tracer's own namespace, which --netns leaves unwatched; \
                 drop --netns or name the namespace (NETNS:IFACE)"
            ),
            None => {}
        }
    }

    // A fixed mmap threshold: glibc otherwise raises it when a large block
    // is freed (the parsed BTF), and then the mirror's array grows on the
    // heap by copying (old and new copies at once, about 12 MB more peak
    // for a million routes) rather than by mremap.
    // SAFETY: mallopt only tunes the allocator.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10) };
    let facts = KernelFacts::gather()?;
    // With --netns, the namespaces are known now (names resolve to inodes),
    // and requests from all others are dropped in the kernel.
    let limited: Option<Vec<u32>> = (!args.netns.is_empty()).then(|| spaces.inodes());
    let prepared = facts.prepare(args.attach, !args.iface.is_empty(), limited.is_some())?;
    // The kernel's BTF as btf-rs parsed it and the symbol tables are needed
    // no more: give their memory back (tens of MiB) before aya parses the
    // BTF again to load, so the two never add up.
    let kernel = facts.features.release.clone();
    drop(facts);
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    let mut loaded = loader::load(prepared, args.attach, limited.as_deref())?;
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
    // With --iface, the packet path owns the programs (it attaches more as
    // interfaces come and go); without, they stay in `loaded`.
    let mut packets = if args.iface.is_empty() {
        None
    } else {
        let mut warnings = Vec::new();
        let hooks = PacketHooks::new(loaded.ebpf, &mut warnings)?;
        for w in &warnings {
            log::warn!("{w}");
        }
        Some(PacketPath::new(
            WatchList::new(args.iface.clone(), hooks),
            args.pcap.as_deref(),
            Duration::from_secs(args.loop_summary_secs.max(1)),
            Duration::from_secs(args.loop_end_secs.max(1)),
        )?)
    };
    let enricher = Enricher::new().context("reading /proc for process enrichment")?;
    let mut p = Presenter {
        clock: Clock::new(),
        enricher,
        tables,
        cache: HashMap::new(),
    };

    let own = p.enricher.netns.own_inode();
    for ns in spaces.rescan() {
        seed(&mut spaces, &mut engine, packets.as_mut(), ns)
            .with_context(|| format!("dumping namespace {ns}"))?;
    }
    if let Some(pp) = packets.as_mut() {
        sync_ifaces(pp, &engine, own);
        for spec in pp.watch.specs() {
            if !pp.watch.is_active(spec) {
                log::warn!("--iface {spec}: not present yet; it will be watched when it appears");
            }
        }
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
            kernel,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            namespaces,
            ifaces: packets
                .as_ref()
                .map(|pp| {
                    pp.watch
                        .specs()
                        .iter()
                        .map(|s| WatchedIface {
                            iface: s.to_string(),
                            via: pp.watch.via(s),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }),
    };
    out.write(&ready)?;
    // The snapshot follows `ready` in the journal, but stdout shows `ready`
    // only once the snapshot is taken (the flush below), so whoever waits
    // for it knows the guard's starting state is known.
    if out.wants_state() {
        let mut inodes: Vec<u32> = spaces.watched.keys().copied().collect();
        inodes.sort();
        for ns in inodes {
            snapshot(&mut spaces, &engine, &mut p, ns, &mut out)
                .with_context(|| format!("snapshot of namespace {ns}"))?;
        }
        out.start()?;
    }
    out.flush()?;

    // SAFETY: the RingBuf owns its map fd and the AsyncFd owns the RingBuf,
    // so the fd stays open and the same for the AsyncFd's whole life.
    let mut ring = unsafe { AsyncFd::register(loaded.ring) }
        .map_err(|e| e.into_parts().1)
        .context("polling the ring buffer")?;
    let dropped = loaded.dropped;
    let mut last_dropped = 0u64;
    // Timers wake the tracer only when there is work: the correlator's
    // tick while changes wait for their other half, the packet path's
    // every PKT_TICK (a looped packet wakes the tracer itself). An idle
    // tracer wakes about a dozen times a second.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut pkt_tick = tokio::time::interval(PKT_TICK);
    pkt_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut slow = tokio::time::interval(Duration::from_millis(500));
    // Guard grace periods and commands.
    let mut out_tick = tokio::time::interval(Duration::from_millis(100));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // After SIGINT/SIGTERM, keep collecting briefly so that changes already
    // made (and re-reads already planned) are reported before exit.
    let mut stop_at: Option<Instant> = None;

    loop {
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        // Waits expire only once both inputs are drained: under a burst the
        // other half of a change may still be queued, however old it is.
        let ring_backlog = ring.get_ref().pending_bytes() > 0;
        let ring_now = read_ring_now(
            ring.get_ref(),
            engine.waiting_requests(),
            !rx.is_empty() || spaces.backlog(),
        );
        tokio::select! {
            guard = ring.readable_mut(), if ring_now => {
                let mut guard = guard?;
                let n = drain_ring(guard.get_inner_mut(), &mut engine, &mut p, packets.as_mut(), RING_BATCH);
                // Wakeups come only when the consumer has caught up, so
                // readiness is kept while anything is left (a record still
                // being written is read on the next turn).
                if n < RING_BATCH && guard.get_inner().pending_bytes() == 0 {
                    guard.clear_ready();
                }
                // A looped packet wakes us (tracer-ebpf's packet/emit.rs):
                // report it now.
                if let Some(pp) = packets.as_mut() {
                    let findings = pp.tick(Clock::boot_now_ns());
                    emit_findings(pp, findings, &mut spaces, &engine, &mut p, &mut out)?;
                }
            }
            // Most packet records do not wake us: collect them, and report
            // loops reported without their lookups, and summaries and ends,
            // on a timer.
            _ = pkt_tick.tick(), if packets.is_some() => {
                drain_ring(ring.get_mut(), &mut engine, &mut p, packets.as_mut(), usize::MAX);
                if let Some(pp) = packets.as_mut() {
                    let findings = pp.tick(Clock::boot_now_ns());
                    emit_findings(pp, findings, &mut spaces, &engine, &mut p, &mut out)?;
                }
            }
            _ = out_tick.tick() => out.tick()?,
            Some(input) = rx.recv() => {
                let now = Instant::now();
                match input {
                    NsInput::Notify { netns, items } => {
                        let links = packets
                            .as_mut()
                            .is_some_and(|pp| packet_notifications(pp, netns, &items));
                        for i in items {
                            engine.notification(netns, i, now);
                        }
                        if links && let Some(pp) = packets.as_mut() {
                            sync_ifaces(pp, &engine, own);
                        }
                    }
                    NsInput::Overflow { netns } => {
                        let found = match spaces.watched.get_mut(&netns) {
                            Some(w) => engine
                                .recover(netns, now, |each| w.dump_routes(each))
                                .unwrap_or_else(|e| {
                                    log::warn!("re-reading routes of namespace {netns}: {e:#}");
                                    0
                                }),
                            None => 0,
                        };
                        let count = found.max(1) as u64;
                        out.write(&p.lost(Source::Netlink, count, "netlink_socket"))?;
                    }
                    NsInput::Failed { netns, error } => log::warn!("namespace {netns}: {error}"),
                }
            }
            _ = tick.tick(), if !ring_backlog && rx.is_empty() && !spaces.backlog() && engine.waiting() => {
                let now = Instant::now();
                for (netns, cause) in engine.tick(now) {
                    if let Some(w) = spaces.watched.get_mut(&netns)
                        && let Err(e) = engine.resync(netns, cause, |each| w.dump_routes(each))
                    {
                        log::warn!("re-reading routes of namespace {netns}: {e:#}");
                    }
                }
            }
            _ = slow.tick() => {
                let before: Vec<u32> = spaces.watched.keys().copied().collect();
                for ns in spaces.rescan() {
                    if let Err(e) = seed(&mut spaces, &mut engine, packets.as_mut(), ns) {
                        log::warn!("namespace {ns}: {e:#}");
                    }
                }
                for gone in before.iter().filter(|n| !spaces.watched.contains_key(n)) {
                    engine.forget(*gone);
                }
                if let Some(map) = loaded.nl_netns.as_mut()
                    && let Err(e) = loader::sync_netns(map, &spaces.inodes())
                {
                    log::warn!("{e:#}");
                }
                if let Some(pp) = packets.as_mut() {
                    sync_ifaces(pp, &engine, own);
                }
                log::debug!(
                    "waiting: {} requests, {} notifications, ring {} bytes unread, rx empty {} backlog {}",
                    engine.waiting_requests(),
                    engine.waiting_notifications(),
                    ring.get_ref().pending_bytes(),
                    rx.is_empty(),
                    spaces.backlog()
                );
                let total: u64 = dropped.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(last_dropped);
                if total > last_dropped {
                    out.write(&p.lost(primary, total - last_dropped, "ring_buffer"))?;
                    last_dropped = total;
                }
            }
            _ = sigint.recv(), if stop_at.is_none() => stop_at = Some(Instant::now() + STOP_GRACE),
            _ = sigterm.recv(), if stop_at.is_none() => stop_at = Some(Instant::now() + STOP_GRACE),
        }
        emit_outcomes(&mut engine, &mut p, packets.as_mut(), &mut out)?;
        out.flush()?;
        if out.closed() {
            break;
        }
    }

    // Records already in the ring buffer belong to this session.
    let now = Instant::now();
    drain_ring(
        ring.get_mut(),
        &mut engine,
        &mut p,
        packets.as_mut(),
        usize::MAX,
    );
    while let Ok(input) = rx.try_recv() {
        if let NsInput::Notify { netns, items } = input {
            for i in items {
                engine.notification(netns, i, now);
            }
        }
    }
    engine.drain(now);
    emit_outcomes(&mut engine, &mut p, packets.as_mut(), &mut out)?;
    if let Some(pp) = packets.as_mut() {
        let mut findings = pp.tick(Clock::boot_now_ns());
        findings.extend(pp.finish(Clock::boot_now_ns()));
        emit_findings(pp, findings, &mut spaces, &engine, &mut p, &mut out)?;
        if pp.undecoded > 0 {
            log::info!(
                "{} packet records were not IPv4/IPv6 and were skipped",
                pp.undecoded
            );
        }
    }
    out.tick()?;
    out.close()
}
