//! What a session reads from a namespace itself: the links, addresses and
//! routes of one it starts watching, the snapshot a journal or a guard
//! starts from, and the `--iface` interfaces as links come and go.
use anyhow::Result;

use crate::{
    collect::namespaces::Namespaces,
    correlate::{Engine, FlushCauses},
    enrich::present::Presenter,
    event::{Body, Event, Kind, SnapshotEnd, Source, StateEntry},
    netlink::{decode::NlObj, socket::DumpKind},
    packet::{path::PacketPath, watchlist::WatchChange},
    session::pipeline::Pipeline,
};

/// Dump links and routes (and addresses, for the packet path) of a newly
/// watched namespace into the mirror.
pub(super) fn seed(
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
    engine.mirror(netns).load_nexthops(&nexthops(w));
    engine.resync(
        netns,
        FlushCauses::default(),
        std::time::Instant::now(),
        |each| w.dump_routes(each),
    )
}

/// The nexthop objects of a watched namespace; none when the dump fails
/// (a kernel before 5.3 has none), which is logged.
pub(super) fn nexthops(
    w: &mut crate::collect::namespaces::Watched,
) -> Vec<crate::netlink::decode::NlItem> {
    w.dump(DumpKind::Nexthops).unwrap_or_else(|e| {
        log::debug!("dumping nexthop objects: {e:#}");
        Vec::new()
    })
}

/// Writes one namespace's rules and routes as `snapshot` events, then its
/// `snapshot_end`.
pub(super) fn snapshot(
    spaces: &mut Namespaces,
    engine: &Engine,
    p: &mut Presenter,
    netns: u32,
    out: &mut Pipeline,
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
                route.name_devs(|i| mirror?.dev(i));
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
pub(super) fn sync_ifaces(pp: &mut PacketPath, engine: &Engine, own: u32) {
    let changes = pp.sync(
        |name| match name {
            None => Some(own),
            Some(n) => std::fs::metadata(format!("{}/{n}", crate::nsfs::NETNS_RUN_DIR))
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
