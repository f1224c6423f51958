//! Classic tc filters a killed tracer left behind. Unlike tcx links, a
//! `cls_bpf` filter outlives the process that added it (and keeps its
//! program and maps loaded): a tracer stopped by SIGKILL leaves one on each
//! hook of every interface it watched. Before attaching its own, a session
//! removes each filter of ours (by program name) whose program no live
//! process holds: a filter of another tracer still running is left alone.
//!
//! The filters are listed with an RTM_GETTFILTER dump (netlink-packet-route
//! decodes it, `bpf` options included) and removed through aya, in the
//! calling thread's network namespace (the interface's).
use std::collections::HashSet;

use anyhow::{Context as _, Result, bail};
use aya::programs::{
    Link as _,
    tc::{SchedClassifierLink, TcAttachType, TcHandle},
};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcFilterBpfOption, TcHandle as NlHandle, TcMessage, TcOption},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A `bpf` filter on one hook of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfFilter {
    pub priority: u16,
    pub handle: u32,
    pub name: String,
    pub prog_id: u32,
}

/// The clsact parent of a hook (`tc filter show dev X ingress|egress`).
fn parent(at: TcAttachType) -> NlHandle {
    NlHandle {
        major: u16::MAX,
        minor: match at {
            TcAttachType::Egress => NlHandle::MIN_EGRESS,
            _ => NlHandle::MIN_INGRESS,
        },
    }
}

/// The `bpf` filters of one hook of interface `ifindex`, in the calling
/// thread's namespace. An interface without a clsact qdisc has none.
pub fn bpf_filters(ifindex: u32, at: TcAttachType) -> Result<Vec<BpfFilter>> {
    let mut s = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    s.bind_auto().context("binding the netlink socket")?;
    s.connect(&SocketAddr::new(0, 0))
        .context("connecting the netlink socket")?;
    let mut tc = TcMessage::default();
    tc.header.index = i32::try_from(ifindex).context("ifindex")?;
    tc.header.parent = parent(at);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetTrafficFilter(tc)),
    );
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    s.send(&out, 0).context("asking for the tc filters")?;
    let mut filters = Vec::new();
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        buf.clear();
        s.recv(&mut buf, 0).context("reading the tc filters")?;
        let mut off = 0;
        while off < buf.len() {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..])
                .context("decoding a tc filter message")?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::Done(_) => return Ok(filters),
                // No clsact qdisc: nothing to list.
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    let errno = e.code.map_or(0, |c| -c.get());
                    if errno == libc::EINVAL || errno == libc::ENOENT {
                        return Ok(filters);
                    }
                    bail!(
                        "listing tc filters: {}",
                        std::io::Error::from_raw_os_error(errno)
                    );
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(f)) => {
                    filters.extend(bpf_filter(&f));
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

/// The filter a message describes, when it is a `bpf` one.
fn bpf_filter(f: &TcMessage) -> Option<BpfFilter> {
    let mut kind_bpf = false;
    let (mut name, mut prog_id) = (None, None);
    for a in &f.attributes {
        match a {
            TcAttribute::Kind(k) => kind_bpf = k == "bpf",
            TcAttribute::Options(opts) => {
                for o in opts {
                    match o {
                        TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => name = Some(n.clone()),
                        TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => prog_id = Some(*id),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // A filter's header carries its priority in tcm_info's upper half; the
    // dump also lists each priority's chain head, which has no handle.
    let handle = u32::from(f.header.handle.major) << 16 | u32::from(f.header.handle.minor);
    (kind_bpf && handle != 0).then_some(BpfFilter {
        priority: (f.header.info >> 16) as u16,
        handle,
        name: name?,
        prog_id: prog_id?,
    })
}

/// The BPF program ids that some live process holds a descriptor of
/// (`prog_id:` in /proc/PID/fdinfo), among `wanted`.
pub fn held_programs(wanted: &HashSet<u32>) -> HashSet<u32> {
    let mut held = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return held;
    };
    for p in procs.flatten() {
        let pid = p.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let is_prog =
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf-prog");
            if !is_prog {
                continue;
            }
            let info = p.path().join("fdinfo").join(fd.file_name());
            let Ok(text) = std::fs::read_to_string(info) else {
                continue;
            };
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse::<u32>().ok());
            if let Some(id) = id.filter(|id| wanted.contains(id)) {
                held.insert(id);
            }
        }
    }
    held
}

/// Remove, from interface `ifname` (`ifindex`) in the calling thread's
/// namespace, each `bpf` filter named as one of `ours` whose program no
/// live process holds. Returns a description of each filter removed.
pub fn remove_orphans(
    ifname: &str,
    ifindex: u32,
    ours: &[(&str, TcAttachType)],
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for (name, at) in ours {
        for f in bpf_filters(ifindex, *at)? {
            if f.name == *name {
                found.push((*at, f));
            }
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let ids: HashSet<u32> = found.iter().map(|(_, f)| f.prog_id).collect();
    let held = held_programs(&ids);
    let mut removed = Vec::new();
    for (at, f) in found
        .into_iter()
        .filter(|(_, f)| !held.contains(&f.prog_id))
    {
        SchedClassifierLink::attached(ifname, at, f.priority, TcHandle::from(f.handle), None)
            .context("naming a left-over filter")?
            .detach()
            .with_context(|| format!("removing the left-over filter {}", f.name))?;
        removed.push(format!(
            "{} (program id {}, pref {}, handle {:#x})",
            f.name, f.prog_id, f.priority, f.handle
        ));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &str, handle: u32, opts: Vec<TcFilterBpfOption>) -> TcMessage {
        let mut m = TcMessage::default();
        m.header.handle = NlHandle {
            major: (handle >> 16) as u16,
            minor: handle as u16,
        };
        // pref 49152, protocol all (ETH_P_ALL, network order).
        m.header.info = (49152 << 16) | 0x0300;
        m.attributes.push(TcAttribute::Kind(kind.into()));
        m.attributes.push(TcAttribute::Options(
            opts.into_iter().map(TcOption::Bpf).collect(),
        ));
        m
    }

    #[test]
    fn a_bpf_filter_is_read_with_its_priority_name_and_program() {
        let f = msg(
            "bpf",
            1,
            vec![
                TcFilterBpfOption::ProgName("pkt_rx_tc".into()),
                TcFilterBpfOption::ProgId(17349),
            ],
        );
        assert_eq!(
            bpf_filter(&f),
            Some(BpfFilter {
                priority: 49152,
                handle: 1,
                name: "pkt_rx_tc".into(),
                prog_id: 17349
            })
        );
    }

    #[test]
    fn chain_heads_other_kinds_and_unnamed_programs_are_not_ours() {
        let named = || {
            vec![
                TcFilterBpfOption::ProgName("pkt_rx_tc".into()),
                TcFilterBpfOption::ProgId(1),
            ]
        };
        assert_eq!(bpf_filter(&msg("bpf", 0, named())), None, "chain head");
        assert_eq!(bpf_filter(&msg("u32", 1, named())), None);
        let no_name = vec![TcFilterBpfOption::ProgId(1)];
        assert_eq!(bpf_filter(&msg("bpf", 1, no_name)), None);
    }

    #[test]
    fn an_id_no_process_holds_is_not_held() {
        // No process holds a program of this id (ids never reach it).
        let wanted: HashSet<u32> = [u32::MAX].into();
        assert!(held_programs(&wanted).is_empty());
    }
}
