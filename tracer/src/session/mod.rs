//! One tracing session, shared by `watch`, `record` and `guard`: load and
//! attach (`start`), then one event loop that reads the two inputs (the
//! ring buffer of kernel records, the namespaces' notifications), turns them
//! into events (collect → correlate/detect → enrich) and hands them to the
//! outputs, until SIGINT/SIGTERM (`finish`).
mod inputs;
mod netns;
pub mod pipeline;
mod seed;
mod start;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray},
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::mpsc::Receiver,
    time::MissedTickBehavior,
};

use crate::{
    bpf::ring::RingReader,
    cli::WatchArgs,
    clock::Clock,
    collect::{
        NsInput,
        namespaces::Namespaces,
        netns_scan::{Scan, Scanner},
    },
    correlate::Engine,
    enrich::present::Presenter,
    event::{Body, Event, Kind, NamespaceSeen, Source},
    packet::path::PacketPath,
};
use inputs::{drain_ring, emit_findings, emit_outcomes, packet_notifications};
use pipeline::Pipeline;
use seed::{seed, snapshot, sync_ifaces};

/// Ring-buffer records decoded per wake-up before other inputs get a turn.
const RING_BATCH: usize = 64;
/// Requests (route/rule changes) read ahead of their notifications beyond
/// which, while notifications are queued, the ring buffer is left to hold
/// the backlog (kernel memory) rather than the tracer's heap.
const READ_AHEAD: usize = 4096;
/// How often the namespaces are rescanned: new ones are watched, and gone
/// ones reported, within a second.
const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// The least time between two extra rescans that changes in an unwatched
/// namespace ask for.
const UNWATCHED_RESCAN: Duration = Duration::from_millis(50);
/// How long collection goes on after SIGINT/SIGTERM.
const STOP_GRACE: Duration = Duration::from_millis(300);
/// How often the packet path drains the records that do not wake the
/// tracer and reports what is due (a loop whose FIB lookups did not come
/// within the detector's 100 ms is reported at the next tick).
const PKT_TICK: Duration = Duration::from_millis(100);
/// How often the heap's free pages go back to the system (`memory`): a
/// backlog worked off in a burst (the tracer was kept off the CPU) leaves
/// the heap larger, and glibc keeps what was freed below its top.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Whether to read the ring buffer now. Requests read from it wait in
/// memory for their notifications; so while notifications are queued and
/// enough requests wait already, the backlog is left in the ring, unless
/// the ring is three-quarters full (losing records would lose processes).
fn read_ring_now(ring: &RingReader, waiting: usize, notifications_queued: bool) -> bool {
    waiting < READ_AHEAD || !notifications_queued || ring.pending_bytes() > ring.size() / 4 * 3
}

/// Everything a running session holds but the ring buffer and the timers.
struct Session {
    spaces: Namespaces,
    /// Which namespaces to watch (--netns).
    select: netns::Selection,
    /// The host's namespaces, from the scanner thread.
    scans: Receiver<Scan>,
    scanner: Scanner,
    rx: Receiver<NsInput>,
    engine: Engine,
    packets: Option<PacketPath>,
    p: Presenter,
    out: Pipeline,
    /// Records the ring buffer could not take, per CPU.
    dropped: PerCpuArray<MapData, u64>,
    /// The namespaces whose requests the kernel copies (with --netns).
    nl_netns: Option<HashMap<MapData, u32, u8>>,
    /// The programs, when no packet path owns them: attached while held.
    _ebpf: Option<Ebpf>,
    /// The tracer's own namespace.
    own: u32,
    /// The main mechanism, for `lost` events.
    primary: Source,
    last_dropped: u64,
    /// When the scanner was last asked for a rescan.
    last_poke: Instant,
    /// When the heap's free pages were last given back.
    last_trim: Instant,
    /// The last scan: what held each namespace, for those the next one
    /// finds gone (who ended them).
    last_scan: Scan,
}

/// One tracing session: load and attach, seed the namespaces, then turn
/// kernel records and notifications into events for `out` until
/// SIGINT/SIGTERM. With a journal or a guard, the state is snapshotted
/// first.
pub async fn session(args: WatchArgs, out: Pipeline) -> Result<()> {
    // Before `ready` is written: whoever waits for it may stop the tracer
    // at once, and SIGINT must then detach cleanly, not kill it.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // SIGHUP (a closed terminal, or a reload asked of a command without
    // one) stops `watch` and `record` cleanly, as SIGTERM does; the guard
    // handles it as a reload (commands/guard.rs).
    let mut sighup = if out.has_stages() {
        None
    } else {
        Some(signal(SignalKind::hangup())?)
    };
    let (mut s, ring) = Session::start(args, out)?;
    // SAFETY: the RingBuf owns its map fd and the AsyncFd owns the RingBuf,
    // so the fd stays open and the same for the AsyncFd's whole life.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| e.into_parts().1)
        .context("polling the ring buffer")?;
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
        let inputs_queued = !s.rx.is_empty() || s.spaces.backlog();
        let ring_now = read_ring_now(ring.get_ref(), s.engine.waiting_requests(), inputs_queued);
        // A stage's deadline between the regular ticks (a grace period's
        // end: the guard's repair is due then, not up to 100 ms later).
        let stage_due = s.out.due();
        tokio::select! {
            guard = ring.readable_mut(), if ring_now => {
                let mut guard = guard?;
                let n = s.read_ring(guard.get_inner_mut(), RING_BATCH);
                // Wakeups come only when the consumer has caught up, so
                // readiness is kept while anything is left (a record still
                // being written is read on the next turn).
                if n < RING_BATCH && guard.get_inner().pending_bytes() == 0 {
                    guard.clear_ready();
                }
                // A looped packet wakes us (tracer-ebpf's packet/emit.rs):
                // report it now.
                s.packet_findings()?;
            }
            // Most packet records do not wake us: collect them, and report
            // loops reported without their lookups, and summaries and ends,
            // on a timer.
            _ = pkt_tick.tick(), if s.packets.is_some() => {
                s.read_ring(ring.get_mut(), usize::MAX);
                s.packet_findings()?;
            }
            _ = out_tick.tick() => s.out.tick()?,
            _ = tokio::time::sleep_until(stage_due.unwrap_or_else(Instant::now).into()), if stage_due.is_some() => s.out.tick()?,
            Some(input) = s.rx.recv() => s.input(input)?,
            Some(scan) = s.scans.recv() => s.namespaces(scan, ring.get_mut())?,
            _ = tick.tick(), if !ring_backlog && !inputs_queued && s.engine.waiting() => s.tick(),
            _ = slow.tick() => s.slow(ring.get_ref())?,
            _ = sigint.recv(), if stop_at.is_none() => stop_at = Some(Instant::now() + STOP_GRACE),
            _ = sigterm.recv(), if stop_at.is_none() => stop_at = Some(Instant::now() + STOP_GRACE),
            Some(_) = async { sighup.as_mut()?.recv().await }, if stop_at.is_none() && sighup.is_some() => {
                stop_at = Some(Instant::now() + STOP_GRACE);
            }
        }
        emit_outcomes(&mut s.engine, &mut s.p, s.packets.as_mut(), &mut s.out)?;
        s.out.flush()?;
        if s.out.closed() {
            break;
        }
    }
    s.finish(ring.get_mut())
}

impl Session {
    fn read_ring(&mut self, rb: &mut RingReader, max: usize) -> usize {
        let n = drain_ring(
            rb,
            &mut self.engine,
            &mut self.p,
            self.packets.as_mut(),
            max,
        );
        // A change in a namespace not watched yet (one that just appeared):
        // watch it now, so that its next changes are read from the kernel,
        // at most every UNWATCHED_RESCAN.
        if self.engine.take_unwatched_seen() && self.last_poke.elapsed() >= UNWATCHED_RESCAN {
            self.scanner.poke();
            self.last_poke = Instant::now();
        }
        n
    }

    /// The packet path's findings due now.
    fn packet_findings(&mut self) -> Result<()> {
        if let Some(pp) = self.packets.as_mut() {
            let findings = pp.tick(Clock::boot_now_ns());
            let (spaces, engine, p, out) =
                (&mut self.spaces, &self.engine, &mut self.p, &mut self.out);
            emit_findings(pp, findings, spaces, engine, p, out)?;
        }
        Ok(())
    }

    /// A batch of notifications, or a namespace's socket trouble.
    fn input(&mut self, input: NsInput) -> Result<()> {
        let now = Instant::now();
        match input {
            NsInput::Notify { netns, items } => {
                let links = self
                    .packets
                    .as_mut()
                    .is_some_and(|pp| packet_notifications(pp, netns, &items));
                for i in items {
                    self.engine.notification(netns, i, now);
                }
                if links && let Some(pp) = self.packets.as_mut() {
                    sync_ifaces(pp, &self.engine, self.own);
                }
            }
            NsInput::Overflow { netns } => {
                let found = match self.spaces.watched.get_mut(&netns) {
                    Some(w) => {
                        let found = self
                            .engine
                            .recover(netns, now, |each| w.dump_routes(each))
                            .unwrap_or_else(|e| {
                                log::warn!("re-reading routes of namespace {netns}: {e:#}");
                                0
                            });
                        let nexthops = seed::nexthops(w);
                        let causes = Default::default();
                        self.engine.reload_nexthops(netns, &nexthops, &causes, true);
                        found
                    }
                    None => 0,
                };
                let count = found.max(1) as u64;
                self.out
                    .write(&self.p.lost(Source::Netlink, count, "netlink_socket"))?;
            }
            NsInput::Failed { netns, error } => log::warn!("namespace {netns}: {error}"),
        }
        Ok(())
    }

    /// The correlator's waits and the flush re-reads that are due.
    fn tick(&mut self) {
        let now = Instant::now();
        // Up to when each namespace's notifications have all been read:
        // what the reader handed over (looked at first), if none of it is
        // still queued.
        let mut read = self.spaces.read_up_to(now);
        if !self.rx.is_empty() {
            read.iter_mut().for_each(|r| r.1 = None);
        }
        self.engine.notifications_read(&read);
        for (netns, causes) in self.engine.tick(now) {
            let Some(w) = self.spaces.watched.get_mut(&netns) else {
                continue;
            };
            if let Err(e) = self
                .engine
                .resync(netns, causes.clone(), now, |each| w.dump_routes(each))
            {
                log::warn!("re-reading routes of namespace {netns}: {e:#}");
            }
            let nexthops = seed::nexthops(w);
            self.engine
                .reload_nexthops(netns, &nexthops, &causes, false);
        }
    }

    /// Twice a second: the watched interfaces, and records the ring
    /// buffer lost.
    fn slow(&mut self, ring: &RingReader) -> Result<()> {
        if let Some(pp) = self.packets.as_mut() {
            sync_ifaces(pp, &self.engine, self.own);
        }
        if self.last_trim.elapsed() >= TRIM_EVERY {
            let started = Instant::now();
            crate::memory::give_back();
            self.last_trim = Instant::now();
            log::debug!("heap trimmed in {:?}", started.elapsed());
        }
        log::debug!(
            "waiting: {} requests, {} notifications, {} held for a re-read, ring {} bytes unread, rx empty {} backlog {}",
            self.engine.waiting_requests(),
            self.engine.waiting_notifications(),
            self.engine.held_for_reread(),
            ring.pending_bytes(),
            self.rx.is_empty(),
            self.spaces.backlog()
        );
        let total: u64 = self
            .dropped
            .get(&0, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(self.last_dropped);
        if total > self.last_dropped {
            let lost = self
                .p
                .lost(self.primary, total - self.last_dropped, "ring_buffer");
            self.out.write(&lost)?;
            self.last_dropped = total;
        }
        Ok(())
    }

    /// Namespaces that came (seeded, snapshotted for a journal or a guard,
    /// and reported) or went (forgotten and reported).
    fn namespaces(&mut self, scan: Scan, rb: &mut RingReader) -> Result<()> {
        let mut r = netns::rescan(
            &mut self.spaces,
            &self.select,
            &mut self.p.enricher.netns,
            scan,
        );
        let last = std::mem::replace(&mut self.last_scan, std::mem::take(&mut r.scan));
        if !r.gone.is_empty() {
            // The unmount that ended one is in the ring already (read at
            // the syscall's entry, before the scan found the mount gone).
            self.read_ring(rb, usize::MAX);
        }
        // With --netns, the kernel copies the requests of these only.
        if (!r.added.is_empty() || r.changed)
            && let Some(map) = self.nl_netns.as_mut()
            && let Err(e) = crate::bpf::loader::sync_netns(map, &self.spaces.inodes())
        {
            log::warn!("{e:#}");
        }
        for ns in r.added {
            if let Err(e) = seed(
                &mut self.spaces,
                &mut self.engine,
                self.packets.as_mut(),
                ns,
            ) {
                log::warn!("namespace {ns}: {e:#}");
            }
            let e = self.namespace_event(Kind::NetnsNew, ns);
            self.out.write(&e)?;
            if self.out.wants_state()
                && let Err(e) = snapshot(
                    &mut self.spaces,
                    &self.engine,
                    &mut self.p,
                    ns,
                    &mut self.out,
                )
            {
                log::warn!("snapshot of namespace {ns}: {e:#}");
            }
        }
        for ns in r.gone {
            // Its routes went with it, then the namespace.
            self.engine.forget(ns, last.get(&ns), Instant::now());
            emit_outcomes(
                &mut self.engine,
                &mut self.p,
                self.packets.as_mut(),
                &mut self.out,
            )?;
            let e = self.namespace_event(Kind::NetnsGone, ns);
            self.out.write(&e)?;
        }
        Ok(())
    }

    fn namespace_event(&mut self, kind: Kind, ns: u32) -> Event {
        Event {
            ts: self.p.clock.wall(None),
            kind,
            source: Source::Tracer,
            body: Body::Namespace(NamespaceSeen {
                netns: self.p.netns(ns),
            }),
        }
    }

    /// The end: what is already in the ring buffer and the sockets belongs
    /// to this session, and everything still waiting is reported.
    fn finish(mut self, rb: &mut RingReader) -> Result<()> {
        let now = Instant::now();
        self.read_ring(rb, usize::MAX);
        while let Ok(input) = self.rx.try_recv() {
            if let NsInput::Notify { netns, items } = input {
                for i in items {
                    self.engine.notification(netns, i, now);
                }
            }
        }
        self.engine.drain(now);
        emit_outcomes(
            &mut self.engine,
            &mut self.p,
            self.packets.as_mut(),
            &mut self.out,
        )?;
        if let Some(pp) = self.packets.as_mut() {
            let mut findings = pp.tick(Clock::boot_now_ns());
            findings.extend(pp.finish(Clock::boot_now_ns()));
            emit_findings(
                pp,
                findings,
                &mut self.spaces,
                &self.engine,
                &mut self.p,
                &mut self.out,
            )?;
            if pp.undecoded > 0 {
                log::info!(
                    "{} packet records were not IPv4/IPv6 and were skipped",
                    pp.undecoded
                );
            }
        }
        self.out.tick()?;
        self.out.close()
    }
}
