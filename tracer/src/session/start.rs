//! Starting a session: load and attach the programs, set up the packet
//! path and enrichment, seed the watched namespaces, then write `ready`
//! (and, for a journal or a guard, the snapshot).
use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, Result, bail};
use aya::Ebpf;
use tokio::sync::mpsc::channel;

use super::{
    Session,
    netns::{Selection, rescan},
    seed::{seed, snapshot, sync_ifaces},
};
use crate::{
    bpf::{
        ladder::{Hook, Mechanism},
        loader::{self, KernelFacts},
        packet_hooks::PacketHooks,
        ring::RingReader,
    },
    cli::WatchArgs,
    clock::Clock,
    collect::{namespaces::Namespaces, netns_scan},
    correlate::{Engine, RequestScope},
    enrich::{Enricher, netns::NetnsNames, present::Presenter},
    event::{Body, Event, Kind, Netns, Ready, Source, WatchedIface},
    netlink::names::TableNames,
    packet::{path::PacketPath, watchlist::WatchList},
    session::pipeline::Pipeline,
};

impl Session {
    pub(super) fn start(args: WatchArgs, mut out: Pipeline) -> Result<(Session, RingReader)> {
        let tables = TableNames::load();
        let (tx, rx) = channel(crate::collect::NS_CHANNEL_BATCHES);
        let (select, mut names, scan) = selection(&args)?;

        let facts = KernelFacts::gather()?;
        // With --netns, the namespaces are known now (names resolve to inodes),
        // and requests from all others are dropped in the kernel.
        let limited: Option<Vec<u32>> =
            (!args.netns.is_empty()).then(|| select.wanted(&scan, &mut names));
        let prepared = facts.prepare(args.attach, !args.iface.is_empty(), limited.is_some())?;
        // The kernel's BTF as btf-rs parsed it and the symbol tables are needed
        // no more: give their memory back (tens of MiB) before aya parses the
        // BTF again to load, so the two never add up.
        let kernel = facts.features.release.clone();
        drop(facts);
        crate::memory::give_back();
        let loaded = loader::load(prepared, args.attach, limited.as_deref())?;
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
        engine.set_sender_check(sender_alive);
        // With --iface, the packet path owns the programs (it attaches more as
        // interfaces come and go); without, the session keeps them.
        let (mut packets, ebpf) = packet_path(&args, loaded.ebpf)?;
        let mut enricher = Enricher::new().context("reading /proc for process enrichment")?;
        enricher.netns = names;
        let mut p = Presenter::new(Clock::new(), enricher, tables);

        let own = p.enricher.netns.own_inode();
        let mut spaces = Namespaces::new(tx)?;
        // Who holds the namespaces no bind mount holds, should one go
        // before the scanner's first scan.
        let mut scan = scan;
        crate::collect::holders::Holders::default().fill(&mut scan, own);
        let found = rescan(&mut spaces, &select, &mut p.enricher.netns, scan);
        let (scan_tx, scans) = channel(1);
        let scanner = netns_scan::Scanner::spawn(super::SCAN_INTERVAL, scan_tx)
            .context("spawning the namespace scanner")?;
        for ns in found.added {
            seed(&mut spaces, &mut engine, packets.as_mut(), ns)
                .with_context(|| format!("dumping namespace {ns}"))?;
        }
        if let Some(pp) = packets.as_mut() {
            sync_ifaces(pp, &engine, own);
            for spec in pp.watch.specs() {
                if !pp.watch.is_active(spec) {
                    log::warn!(
                        "--iface {spec}: not present yet; it will be watched when it appears"
                    );
                }
            }
        }
        let ready = ready(&spaces, &mut p, &hooks, kernel, packets.as_ref(), primary);
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
        let session = Session {
            spaces,
            select,
            scans,
            scanner,
            rx,
            engine,
            packets,
            p,
            out,
            dropped: loaded.dropped,
            nl_netns: loaded.nl_netns,
            _ebpf: ebpf,
            own,
            primary,
            last_dropped: 0,
            last_poke: std::time::Instant::now(),
            last_trim: std::time::Instant::now(),
            last_scan: found.scan,
        };
        Ok((session, loaded.ring))
    }
}

/// The namespaces `--netns` (and `--iface NETNS:IFACE`) select, checked
/// against a first scan of the host's namespaces, which names them.
fn selection(args: &WatchArgs) -> Result<(Selection, NetnsNames, netns_scan::Scan)> {
    let mut select = Selection::new(args.netns.clone());
    let mut names = NetnsNames::new()?;
    let scan = netns_scan::scan(&mut crate::nsfs::NetMounts::new());
    names.assign(&scan);
    select.check(&scan, &mut names)?;
    for spec in &args.iface {
        match &spec.netns {
            // As --netns: a namespace that is not there is an error, not a
            // wait (an interface that is not there yet is waited for).
            Some(ns)
                if !std::path::Path::new(crate::nsfs::NETNS_RUN_DIR)
                    .join(ns)
                    .exists() =>
            {
                let there =
                    crate::nsfs::list_names(std::path::Path::new(crate::nsfs::NETNS_RUN_DIR));
                bail!(
                    "--iface {spec}: no network namespace {ns:?} under {} (--iface takes `ip netns` names); there are {}",
                    crate::nsfs::NETNS_RUN_DIR,
                    if there.is_empty() {
                        "none".to_string()
                    } else {
                        there.join(", ")
                    }
                )
            }
            Some(ns) => select.also_watch(ns),
            None if !select.watches_all() => bail!(
                "--iface {spec} is in the tracer's own namespace, which --netns leaves unwatched; \
                 drop --netns or name the namespace (NETNS:IFACE)"
            ),
            None => {}
        }
    }
    Ok((select, names, scan))
}

/// With `--iface`, the packet path and the programs it owns; without, the
/// programs stay with the session.
fn packet_path(args: &WatchArgs, ebpf: Ebpf) -> Result<(Option<PacketPath>, Option<Ebpf>)> {
    if args.iface.is_empty() {
        return Ok((None, Some(ebpf)));
    }
    let mut warnings = Vec::new();
    let hooks = PacketHooks::new(ebpf, &mut warnings)?;
    for w in &warnings {
        log::warn!("{w}");
    }
    let pp = PacketPath::new(
        WatchList::new(
            args.iface.clone(),
            hooks,
            args.arming(),
            crate::clock::Clock::boot_now_ns(),
        ),
        args.pcap.is_some(),
        Duration::from_secs(args.loop_summary_secs.max(1)),
        Duration::from_secs(args.loop_end_secs.max(1)),
    )?;
    Ok((Some(pp), None))
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
        nexthop_add: tp(Hook::NexthopAdd),
        nexthop_del: tp(Hook::NexthopDel),
        flush_from_notifications: tp(Hook::Route4Flush),
    }
}

/// The `ready` event: the mechanism and function of each hook, the
/// namespaces watched and how each `--iface` interface is seen.
fn ready(
    spaces: &Namespaces,
    p: &mut Presenter,
    hooks: &BTreeMap<Hook, (Mechanism, Option<String>)>,
    kernel: String,
    packets: Option<&PacketPath>,
    primary: Source,
) -> Event {
    let mut namespaces: Vec<Netns> = spaces.watched.keys().map(|i| p.netns(*i)).collect();
    namespaces.sort_by_key(|n| (n.name.clone(), n.inode));
    Event {
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
                            hook: pp.watch.hook(s),
                            programs: pp.watch.programs(s),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }),
    }
}

/// Whether the process a notification's port id names (usually the
/// sender's pid; in another pid namespace or on a second socket, maybe no
/// process) is alive, the tracer itself aside.
fn sender_alive(pid: u32) -> bool {
    pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists()
}
