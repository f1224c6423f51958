//! From inputs to outputs: ring-buffer records to the correlator and the
//! packet path, and what they finish to the outputs.
use std::time::Instant;

use anyhow::Result;

use crate::{
    bpf::ring::RingReader,
    collect::{
        kernel_event::{KernelEvent, parse},
        namespaces::Namespaces,
    },
    correlate::Engine,
    enrich::present::Presenter,
    netlink::{
        decode::{NlItem, NlObj},
        socket::DumpKind,
    },
    packet::path::{NsView, PacketPath},
    session::pipeline::Pipeline,
};

/// Decodes up to `max` ring-buffer records; returns how many were read.
pub(super) fn drain_ring(
    rb: &mut RingReader,
    engine: &mut Engine,
    p: &mut Presenter,
    mut packets: Option<&mut PacketPath>,
    max: usize,
) -> usize {
    let now = Instant::now();
    let read = rb.read(max, |item| match parse(item) {
        Ok(KernelEvent::Exec { task, filename }) => {
            p.note_exec(task.pid, String::from_utf8_lossy(&filename).into_owned());
        }
        Ok(KernelEvent::Packet(ev)) => {
            if let Some(pp) = packets.as_deref_mut() {
                pp.packet(&ev);
            }
        }
        Ok(KernelEvent::Lookup(ev)) => {
            if let Some(pp) = packets.as_deref_mut() {
                pp.lookup(&ev);
            }
        }
        Ok(ev) => engine.kernel_event(ev, now),
        Err(e) => log::warn!("skipping a malformed record: {e}"),
    });
    read.unwrap_or_else(|e| {
        log::warn!("reading the ring buffer: {e:#}");
        0
    })
}

/// Writes the events for the packet path's findings due now.
pub(super) fn emit_findings(
    pp: &mut PacketPath,
    findings: Vec<crate::detect::Finding>,
    spaces: &mut Namespaces,
    engine: &Engine,
    p: &mut Presenter,
    out: &mut Pipeline,
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
    out.capture(pp.take_capture(&p.clock))
}

/// Writes the correlator's finished changes. Every change is also kept for
/// the packet path's suspects, whether or not the filters let it through
/// (`Outputs` applies them).
pub(super) fn emit_outcomes(
    engine: &mut Engine,
    p: &mut Presenter,
    mut packets: Option<&mut PacketPath>,
    out: &mut Pipeline,
) -> Result<()> {
    let now = Instant::now();
    for o in engine.take_outcomes() {
        let e = p.event(o, now);
        if let (Some(pp), Some(inode)) = (
            packets.as_deref_mut(),
            e.change().and_then(|c| c.netns.inode),
        ) {
            pp.changes.note(inode, &e);
        }
        out.write(&e)?;
    }
    Ok(())
}

/// Address and link notifications matter to the packet path: own addresses
/// recognise SNAT, links name the watched interfaces.
pub(super) fn packet_notifications(pp: &mut PacketPath, netns: u32, items: &[NlItem]) -> bool {
    // Any change in the namespace of a watched interface may start a loop
    // there: the tc programs are armed (on demand) for a while.
    if !items.is_empty() {
        pp.watch.changed(netns, crate::clock::Clock::boot_now_ns());
    }
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
