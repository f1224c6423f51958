//! Ring-buffer records from the eBPF programs, decoded with length checks
//! into domain values: the task behind each (`Task`), routes as the event
//! model's `Route`. Layouts are the `#[repr(C)]` structs of tracer-common;
//! no layer above this one sees them, except the packet path's records,
//! which `packet/` decodes from the wire format they carry.
use tracer_common::{
    EventHeader, ExecEvent, FibLookupEvent, FlushEvent, NlAckEvent, NlMsgEvent, PacketEvent,
    Record, RouteEvent, RuleMsgEvent, UmountEvent,
};

use super::task::Task;
use crate::{
    event::{Family, Op, Route},
    netlink::names,
};

/// A netlink buffer copied by a program (a request, or the request message
/// a kernel handler processed: a rule or a nexthop object).
#[derive(Clone, Debug, PartialEq)]
pub struct NlCopy {
    pub task: Task,
    pub syscall: u8,
    pub truncated: bool,
    pub fd: i32,
    pub ret: i32,
    pub data: Vec<u8>,
}

/// A route change a kernel hook (kprobe/fentry) saw, with its result.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelRoute {
    pub task: Task,
    pub op: Op,
    pub route: Route,
    /// The netlink sequence number of the request behind it (0: none).
    pub nl_seq: u32,
    /// The function's return value (0 or a negative errno).
    pub ret: i32,
    /// A netlink request made the call (the kernel's nl_info had one);
    /// false for the kernel's own changes (link down, address removal).
    pub requested: bool,
}

/// fib_table_flush returned.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelFlush {
    pub task: Task,
    pub table: u32,
    /// Number of routes the flush removed.
    pub removed: i32,
    pub flush_all: bool,
}

/// One decoded ring-buffer record.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelEvent {
    /// An rtnetlink request read from a sender's memory (tracepoint path).
    Request(NlCopy),
    /// The request message an rtnetlink handler received (rules and
    /// nexthop objects, from the kprobe/fentry hooks), with the handler's
    /// result.
    Rule(NlCopy),
    Ack {
        task: Task,
        error: i32,
        seq: u32,
        msg_type: u16,
        portid: u32,
    },
    Route(KernelRoute),
    Flush(KernelFlush),
    Exec {
        task: Task,
        filename: Vec<u8>,
    },
    /// A process called umount2 on `path` (as it passed it: absolute or
    /// not, with or without a trailing slash), whether or not it worked.
    Unmount {
        task: Task,
        path: Vec<u8>,
    },
    /// A packet on a watched interface.
    Packet(Box<PacketEvent>),
    /// A FIB lookup for a packet received on a watched interface.
    Lookup(FibLookupEvent),
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than the {need}-byte {what}")]
    TooShort {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("record has unknown kind {0}")]
    UnknownKind(u16),
    #[error("record claims {claimed} bytes of data but carries {max}")]
    BadLength { claimed: usize, max: usize },
}

/// Copy a `T` out of the front of `buf` after checking its length.
fn read<T: Copy>(buf: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if buf.len() < need {
        return Err(DecodeError::TooShort {
            what,
            need,
            got: buf.len(),
        });
    }
    // SAFETY: length checked above; T is a plain #[repr(C)] struct of
    // integers for which every bit pattern is valid; read_unaligned copes
    // with the ring buffer's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
}

fn nl_copy(buf: &[u8]) -> Result<NlCopy, DecodeError> {
    // NlMsgEvent is large; read its fixed part, then slice the data.
    let hdr: EventHeader = read(buf, "event header")?;
    let fixed = std::mem::offset_of!(NlMsgEvent, data);
    if buf.len() < fixed {
        return Err(DecodeError::TooShort {
            what: "netlink record",
            need: fixed,
            got: buf.len(),
        });
    }
    let field = |off: usize| u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"));
    let data_len = field(std::mem::offset_of!(NlMsgEvent, data_len)) as usize;
    let max = buf.len() - fixed;
    if data_len > max || data_len > tracer_common::NL_DATA_MAX {
        return Err(DecodeError::BadLength {
            claimed: data_len,
            max,
        });
    }
    Ok(NlCopy {
        task: Task::from(&hdr),
        syscall: buf[std::mem::offset_of!(NlMsgEvent, syscall)],
        truncated: buf[std::mem::offset_of!(NlMsgEvent, truncated)] != 0,
        fd: field(std::mem::offset_of!(NlMsgEvent, fd)) as i32,
        ret: field(std::mem::offset_of!(NlMsgEvent, ret)) as i32,
        data: buf[fixed..fixed + data_len].to_vec(),
    })
}

/// Decode one ring-buffer record.
pub fn parse(buf: &[u8]) -> Result<KernelEvent, DecodeError> {
    let hdr: EventHeader = read(buf, "event header")?;
    Ok(match hdr.kind {
        NlMsgEvent::KIND => KernelEvent::Request(nl_copy(buf)?),
        RuleMsgEvent::KIND => KernelEvent::Rule(nl_copy(buf)?),
        NlAckEvent::KIND => {
            let a: NlAckEvent = read(buf, "ack record")?;
            KernelEvent::Ack {
                task: Task::from(&hdr),
                error: a.error,
                seq: a.seq,
                msg_type: a.msg_type,
                portid: a.portid,
            }
        }
        RouteEvent::KIND => KernelEvent::Route(kernel_route(&read(buf, "route record")?)),
        FlushEvent::KIND => {
            let f: FlushEvent = read(buf, "flush record")?;
            KernelEvent::Flush(KernelFlush {
                task: Task::from(&f.hdr),
                table: f.table,
                removed: f.removed,
                flush_all: f.flush_all != 0,
            })
        }
        PacketEvent::KIND => {
            let p: PacketEvent = read(buf, "packet record")?;
            if p.cap_len as usize > tracer_common::PKT_SNAP {
                return Err(DecodeError::BadLength {
                    claimed: p.cap_len as usize,
                    max: tracer_common::PKT_SNAP,
                });
            }
            KernelEvent::Packet(Box::new(p))
        }
        FibLookupEvent::KIND => KernelEvent::Lookup(read(buf, "FIB lookup record")?),
        ExecEvent::KIND => KernelEvent::Exec {
            task: Task::from(&hdr),
            filename: path_after(
                buf,
                "exec record",
                std::mem::offset_of!(ExecEvent, filename_len),
                std::mem::offset_of!(ExecEvent, filename),
            )?,
        },
        UmountEvent::KIND => KernelEvent::Unmount {
            task: Task::from(&hdr),
            path: path_after(
                buf,
                "unmount record",
                std::mem::offset_of!(UmountEvent, path_len),
                std::mem::offset_of!(UmountEvent, path),
            )?,
        },
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// The path that ends a record (an exec's file name, an unmounted path):
/// its length is the u32 at `len_at`, its bytes start at `fixed`, and a
/// program copies at most PATH_MAX_COPY of them. Cut at a NUL.
fn path_after(
    buf: &[u8],
    what: &'static str,
    len_at: usize,
    fixed: usize,
) -> Result<Vec<u8>, DecodeError> {
    if buf.len() < fixed {
        return Err(DecodeError::TooShort {
            what,
            need: fixed,
            got: buf.len(),
        });
    }
    let n = u32::from_ne_bytes(buf[len_at..len_at + 4].try_into().expect("4 bytes")) as usize;
    let max = (buf.len() - fixed).min(tracer_common::PATH_MAX_COPY);
    if n > max {
        return Err(DecodeError::BadLength { claimed: n, max });
    }
    let mut path = buf[fixed..fixed + n].to_vec();
    if let Some(nul) = path.iter().position(|b| *b == 0) {
        path.truncate(nul);
    }
    Ok(path)
}

/// The route a kernel hook saw.
fn kernel_route(r: &RouteEvent) -> KernelRoute {
    let addr = |bytes: &[u8; 16], fam: u8| -> Option<std::net::IpAddr> {
        match Family::from_af(fam)? {
            Family::Inet => {
                Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into())
            }
            Family::Inet6 => Some(std::net::Ipv6Addr::from(*bytes).into()),
        }
    };
    let route = Route {
        family: Family::from_af(r.family),
        table: Some(r.table),
        table_name: None,
        rtype: Some(names::route_type(r.rtype)),
        dst: addr(&r.dst, r.family).map(|a| crate::event::prefix(a, r.dst_len)),
        gateway: addr(&r.gw, r.gw_family).map(|a| a.to_string()),
        dev: None,
        ifindex: (r.oif > 0).then_some(r.oif as u32),
        // fib_config's 0 means "any metric" in a request.
        metric: (r.priority != 0).then_some(r.priority),
        protocol: Some(names::protocol(r.protocol)),
        scope: Some(names::scope(r.scope)),
        nexthops: Vec::new(),
        nhid: None,
    };
    KernelRoute {
        task: Task::from(&r.hdr),
        op: if r.op == tracer_common::op::ADD {
            Op::Add
        } else {
            Op::Del
        },
        route,
        nl_seq: r.nl_seq,
        ret: r.ret,
        requested: r.has_nlh != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::{kind, source};

    fn bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a plain struct as bytes.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn route_record_round_trips() {
        let mut r = RouteEvent::default();
        r.hdr.kind = kind::ROUTE;
        r.hdr.source = source::KPROBE;
        r.table = 52;
        r.dst_len = 24;
        r.ret = -3;
        r.family = 2;
        r.dst = [192, 168, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        r.op = tracer_common::op::DEL;
        let KernelEvent::Route(back) = parse(&bytes(&r)).unwrap() else {
            panic!()
        };
        assert_eq!(back.route.table, Some(52));
        assert_eq!(back.route.dst.as_deref(), Some("192.168.1.0/24"));
        assert_eq!(back.route.metric, None);
        assert_eq!(back.route.ifindex, None);
        assert_eq!(back.op, Op::Del);
        assert_eq!(back.ret, -3);
        assert_eq!(back.task.source, crate::event::Source::Kprobe);
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(
            parse(&[0u8; 10]),
            Err(DecodeError::TooShort { .. })
        ));
        let h = EventHeader {
            kind: 99,
            ..EventHeader::default()
        };
        assert_eq!(parse(&bytes(&h)), Err(DecodeError::UnknownKind(99)));
        let mut r = RouteEvent::default();
        r.hdr.kind = kind::ROUTE;
        assert!(matches!(
            parse(&bytes(&r)[..100]),
            Err(DecodeError::TooShort { .. })
        ));
    }

    /// An exec record claiming more of a file name than a program copies
    /// is refused, as a netlink copy claiming more than NL_DATA_MAX is.
    #[test]
    fn exec_name_checks_its_length() {
        let h = EventHeader {
            kind: kind::EXEC,
            ..EventHeader::default()
        };
        let fixed = std::mem::offset_of!(ExecEvent, filename);
        let mut buf = bytes(&h);
        buf.resize(fixed + tracer_common::PATH_MAX_COPY + 8, b'a');
        let off = std::mem::offset_of!(ExecEvent, filename_len);
        let claim = |buf: &mut Vec<u8>, n: u32| buf[off..off + 4].copy_from_slice(&n.to_ne_bytes());
        claim(&mut buf, tracer_common::PATH_MAX_COPY as u32);
        assert!(
            matches!(parse(&buf), Ok(KernelEvent::Exec { filename, .. }) if filename.len() == 256)
        );
        claim(&mut buf, tracer_common::PATH_MAX_COPY as u32 + 1);
        assert!(matches!(parse(&buf), Err(DecodeError::BadLength { .. })));
    }

    /// An unmount record: its path decoded up to its length; a record
    /// cut before its path, or claiming more than it carries, is an error.
    #[test]
    fn unmount_record_decodes_and_checks_its_length() {
        let mut h = EventHeader {
            kind: kind::UMOUNT,
            pid: 4242,
            tid: 4242,
            netns: 4026531840,
            ..EventHeader::default()
        };
        h.comm[..2].copy_from_slice(b"ip");
        let fixed = std::mem::offset_of!(UmountEvent, path);
        let off = std::mem::offset_of!(UmountEvent, path_len);
        let path = b"/run/netns/red";
        let mut buf = bytes(&h);
        buf.resize(fixed, 0);
        buf[off..off + 4].copy_from_slice(&(path.len() as u32).to_ne_bytes());
        buf.extend_from_slice(path);
        buf.resize(size_of::<UmountEvent>(), 0xaa);
        let KernelEvent::Unmount { task, path: got } = parse(&buf).unwrap() else {
            panic!("not an unmount")
        };
        assert_eq!(got, path.to_vec());
        assert_eq!((task.pid, task.netns), (4242, 4026531840));
        assert_eq!(&task.comm[..3], b"ip\0");
        // Cut inside the fixed part: too short, named as an unmount record.
        assert_eq!(
            parse(&buf[..fixed - 1]),
            Err(DecodeError::TooShort {
                what: "unmount record",
                need: fixed,
                got: fixed - 1
            })
        );
        // Cut inside the path it claims.
        assert_eq!(
            parse(&buf[..fixed + 4]),
            Err(DecodeError::BadLength {
                claimed: path.len(),
                max: 4
            })
        );
        // More than a program copies.
        buf[off..off + 4].copy_from_slice(&(tracer_common::PATH_MAX_COPY as u32 + 1).to_ne_bytes());
        assert!(matches!(parse(&buf), Err(DecodeError::BadLength { .. })));
        // A failed read: no path.
        buf[off..off + 4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(parse(&buf), Ok(KernelEvent::Unmount { path, .. }) if path.is_empty()));
    }

    #[test]
    fn netlink_copy_checks_its_length() {
        let h = EventHeader {
            kind: kind::NL_REQUEST,
            ..EventHeader::default()
        };
        let mut buf = bytes(&h);
        buf.resize(96, 0);
        let off = std::mem::offset_of!(NlMsgEvent, data_len);
        buf[off..off + 4].copy_from_slice(&8u32.to_ne_bytes());
        buf.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let KernelEvent::Request(c) = parse(&buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.data, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        buf[off..off + 4].copy_from_slice(&9u32.to_ne_bytes());
        assert!(matches!(parse(&buf), Err(DecodeError::BadLength { .. })));
    }
}
