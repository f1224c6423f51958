//! `ring_record`: one ring-buffer record as the eBPF programs write it
//! (`collect::kernel_event`), then what the pipeline does next with it: the
//! netlink buffer of a request decoded, a packet or FIB lookup turned into
//! the detector's observation. A decoded record, written back as a record
//! of its kind, decodes to the same event.
use std::net::IpAddr;

use tracer_common::{
    EventHeader, ExecEvent, FlushEvent, NL_DATA_MAX, NlAckEvent, NlMsgEvent, PATH_MAX_COPY,
    PKT_SNAP, Record, RouteEvent, RuleMsgEvent, UmountEvent, af, op, source,
};

use crate::{
    collect::{
        kernel_event::{KernelEvent, KernelRoute, NlCopy, parse},
        packet_decode,
        task::Task,
    },
    event::{Family, Op, Source},
    netlink::{decode::decode_buffer, names},
};

pub fn ring_record(data: &[u8]) {
    let Ok(ev) = parse(data) else {
        return;
    };
    match &ev {
        KernelEvent::Request(c) | KernelEvent::Rule(c) => {
            assert!(
                c.data.len() <= NL_DATA_MAX,
                "{} bytes of data",
                c.data.len()
            );
            // As `correlate` does with the copy: every complete message.
            let (items, errors) = decode_buffer(&c.data);
            assert!(items.len() + errors.len() <= c.data.len() / 16 + 1);
        }
        KernelEvent::Exec { filename: path, .. } | KernelEvent::Unmount { path, .. } => {
            assert!(path.len() <= PATH_MAX_COPY, "{} bytes", path.len());
            assert!(!path.contains(&0));
        }
        KernelEvent::Packet(p) => {
            assert!(p.cap_len as usize <= PKT_SNAP);
            if let Ok(obs) = packet_decode::packet(p, "fuzz0") {
                assert!(!obs.bytes.is_empty() && obs.bytes.len() <= p.cap_len as usize);
                let v4 = obs.family == Family::Inet;
                assert_eq!((obs.src.is_ipv4(), obs.dst.is_ipv4()), (v4, v4));
            }
        }
        KernelEvent::Lookup(l) => {
            if let Some(obs) = packet_decode::lookup(l) {
                assert_eq!(obs.src.is_ipv4(), obs.family == Family::Inet);
            }
        }
        KernelEvent::Route(r) => {
            let family = data[std::mem::offset_of!(RouteEvent, family)];
            assert_eq!(r.route.family, Family::from_af(family));
        }
        KernelEvent::Ack { .. } | KernelEvent::Flush(_) => {}
    }
    let again = encode(&ev);
    assert_eq!(parse(&again).as_ref(), Ok(&ev), "re-encoded: {again:02x?}");
}

/// The record's bytes.
fn bytes_of<T: Record>(v: &T) -> Vec<u8> {
    // SAFETY: a `Record` is #[repr(C)] of integers and arrays of them with
    // explicit padding fields (tracer-common checks the layouts), so all
    // of its bytes are initialised.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }.to_vec()
}

fn header(kind: u16, t: &Task) -> EventHeader {
    EventHeader {
        kind,
        source: match t.source {
            Source::Fentry => source::FENTRY,
            Source::Kprobe => source::KPROBE,
            _ => source::TRACEPOINT,
        },
        ts_ns: t.ts_ns,
        pid: t.pid,
        tid: t.tid,
        ppid: t.ppid,
        uid: t.uid,
        netns: t.netns,
        cgroup_id: t.cgroup_id,
        comm: t.comm,
        parent_comm: t.parent_comm,
        ..EventHeader::default()
    }
}

/// The record that says `ev`, as short as its kind allows (the netlink
/// and exec records end after their data).
fn encode(ev: &KernelEvent) -> Vec<u8> {
    match ev {
        KernelEvent::Request(c) => nl_copy(NlMsgEvent::KIND, c),
        KernelEvent::Rule(c) => nl_copy(RuleMsgEvent::KIND, c),
        KernelEvent::Ack {
            task,
            error,
            seq,
            msg_type,
            portid,
        } => bytes_of(&NlAckEvent {
            hdr: header(NlAckEvent::KIND, task),
            error: *error,
            seq: *seq,
            msg_type: *msg_type,
            _pad0: 0,
            portid: *portid,
        }),
        KernelEvent::Route(r) => bytes_of(&route(r)),
        KernelEvent::Flush(f) => bytes_of(&FlushEvent {
            hdr: header(FlushEvent::KIND, &f.task),
            table: f.table,
            removed: f.removed,
            flush_all: u8::from(f.flush_all),
            _pad0: [0; 7],
        }),
        KernelEvent::Exec { task, filename } => {
            let mut out = bytes_of(&ExecEvent {
                hdr: header(ExecEvent::KIND, task),
                filename_len: filename.len() as u32,
                _pad0: 0,
                filename: [0; PATH_MAX_COPY],
            });
            out.truncate(std::mem::offset_of!(ExecEvent, filename));
            out.extend_from_slice(filename);
            out
        }
        KernelEvent::Unmount { task, path } => {
            let mut out = bytes_of(&UmountEvent {
                hdr: header(UmountEvent::KIND, task),
                path_len: path.len() as u32,
                _pad0: 0,
                path: [0; PATH_MAX_COPY],
            });
            out.truncate(std::mem::offset_of!(UmountEvent, path));
            out.extend_from_slice(path);
            out
        }
        KernelEvent::Packet(p) => bytes_of(p.as_ref()),
        KernelEvent::Lookup(l) => bytes_of(l),
    }
}

fn nl_copy(kind: u16, c: &NlCopy) -> Vec<u8> {
    let mut out = bytes_of(&NlMsgEvent {
        hdr: header(kind, &c.task),
        syscall: c.syscall,
        truncated: u8::from(c.truncated),
        _pad0: 0,
        fd: c.fd,
        ret: c.ret,
        data_len: c.data.len() as u32,
        data: [0; NL_DATA_MAX],
    });
    out.truncate(std::mem::offset_of!(NlMsgEvent, data));
    out.extend_from_slice(&c.data);
    out
}

/// An address as the record carries it (IPv4 in the first 4 bytes) and
/// its family.
fn addr_bytes(a: IpAddr) -> ([u8; 16], u8) {
    match a {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, af::INET)
        }
        IpAddr::V6(a) => (a.octets(), af::INET6),
    }
}

/// The route record a kernel hook would write for `r`. Every name the
/// decoder gave comes from a number, so each has its number back.
fn route(r: &KernelRoute) -> RouteEvent {
    let number = |name: Option<&str>, of: fn(&str) -> Option<u8>| -> u8 {
        let name = name.expect("the decoder names every number");
        of(name).unwrap_or_else(|| panic!("{name:?} has no number"))
    };
    let route = &r.route;
    let mut ev = RouteEvent {
        hdr: header(RouteEvent::KIND, &r.task),
        op: match r.op {
            Op::Add => op::ADD,
            Op::Del => op::DEL,
        },
        family: match route.family {
            Some(Family::Inet) => af::INET,
            Some(Family::Inet6) => af::INET6,
            None => 0,
        },
        rtype: number(route.rtype.as_deref(), names::route_type_number),
        protocol: number(route.protocol.as_deref(), names::protocol_number),
        scope: number(route.scope.as_deref(), names::scope_number),
        has_nlh: u8::from(r.requested),
        table: route.table.expect("a kernel route has its table"),
        priority: route.metric.unwrap_or(0),
        oif: route.ifindex.map_or(0, |i| i as i32),
        ret: r.ret,
        nl_seq: r.nl_seq,
        ..RouteEvent::default()
    };
    if let Some(dst) = &route.dst {
        // "addr/len" as the decoder wrote it, whatever the length.
        let (a, len) = dst.split_once('/').expect("a prefix has a length");
        (ev.dst, _) = addr_bytes(a.parse().expect("an address"));
        ev.dst_len = len.parse().expect("a length");
    }
    if let Some(gw) = &route.gateway {
        (ev.gw, ev.gw_family) = addr_bytes(gw.parse().expect("an address"));
    }
    ev
}
