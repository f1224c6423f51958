//! Ring-buffer records from the eBPF programs, decoded with length checks
//! into typed values. Layouts are the `#[repr(C)]` structs of tracer-common.
use tracer_common::{
    EventHeader, ExecEvent, FibLookupEvent, FlushEvent, NlAckEvent, NlMsgEvent, PacketEvent,
    RouteEvent, kind, source,
};

use crate::event::Source;

/// A netlink buffer copied by a program (a request, or a rule the kernel
/// processed).
#[derive(Clone, Debug, PartialEq)]
pub struct NlCopy {
    pub hdr: EventHeader,
    pub syscall: u8,
    pub truncated: bool,
    pub fd: i32,
    pub ret: i32,
    pub data: Vec<u8>,
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// An rtnetlink request read from a sender's memory (tracepoint path).
    Request(NlCopy),
    /// A rule request as the kernel processed it, with its result.
    Rule(NlCopy),
    Ack {
        hdr: EventHeader,
        error: i32,
        seq: u32,
        msg_type: u16,
        portid: u32,
    },
    Route(RouteEvent),
    Flush(FlushEvent),
    Exec {
        hdr: EventHeader,
        filename: Vec<u8>,
    },
    /// A packet on a watched interface.
    Packet(Box<PacketEvent>),
    /// A FIB lookup for a packet received on a watched interface.
    Lookup(FibLookupEvent),
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
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
fn read<T: Copy>(buf: &[u8], what: &'static str) -> Result<T, RecordError> {
    let need = std::mem::size_of::<T>();
    if buf.len() < need {
        return Err(RecordError::TooShort {
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

fn nl_copy(buf: &[u8]) -> Result<NlCopy, RecordError> {
    // NlMsgEvent is large; read its fixed part, then slice the data.
    let hdr: EventHeader = read(buf, "event header")?;
    let fixed = std::mem::offset_of!(NlMsgEvent, data);
    if buf.len() < fixed {
        return Err(RecordError::TooShort {
            what: "netlink record",
            need: fixed,
            got: buf.len(),
        });
    }
    let field = |off: usize| u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"));
    let data_len = field(std::mem::offset_of!(NlMsgEvent, data_len)) as usize;
    let max = buf.len() - fixed;
    if data_len > max || data_len > tracer_common::NL_DATA_MAX {
        return Err(RecordError::BadLength {
            claimed: data_len,
            max,
        });
    }
    Ok(NlCopy {
        hdr,
        syscall: buf[std::mem::offset_of!(NlMsgEvent, syscall)],
        truncated: buf[std::mem::offset_of!(NlMsgEvent, truncated)] != 0,
        fd: field(std::mem::offset_of!(NlMsgEvent, fd)) as i32,
        ret: field(std::mem::offset_of!(NlMsgEvent, ret)) as i32,
        data: buf[fixed..fixed + data_len].to_vec(),
    })
}

/// Decode one ring-buffer record.
pub fn parse(buf: &[u8]) -> Result<Record, RecordError> {
    let hdr: EventHeader = read(buf, "event header")?;
    Ok(match hdr.kind {
        kind::NL_REQUEST => Record::Request(nl_copy(buf)?),
        kind::RULE => Record::Rule(nl_copy(buf)?),
        kind::NL_ACK => {
            let a: NlAckEvent = read(buf, "ack record")?;
            Record::Ack {
                hdr,
                error: a.error,
                seq: a.seq,
                msg_type: a.msg_type,
                portid: a.portid,
            }
        }
        kind::ROUTE => Record::Route(read(buf, "route record")?),
        kind::FLUSH => Record::Flush(read(buf, "flush record")?),
        kind::PACKET => {
            let p: PacketEvent = read(buf, "packet record")?;
            if p.cap_len as usize > tracer_common::PKT_SNAP {
                return Err(RecordError::BadLength {
                    claimed: p.cap_len as usize,
                    max: tracer_common::PKT_SNAP,
                });
            }
            Record::Packet(Box::new(p))
        }
        kind::FIB_LOOKUP => Record::Lookup(read(buf, "FIB lookup record")?),
        kind::EXEC => {
            let fixed = std::mem::offset_of!(ExecEvent, filename);
            let _: EventHeader = read(buf, "exec record")?;
            if buf.len() < fixed {
                return Err(RecordError::TooShort {
                    what: "exec record",
                    need: fixed,
                    got: buf.len(),
                });
            }
            let off = std::mem::offset_of!(ExecEvent, filename_len);
            let n = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            let max = buf.len() - fixed;
            if n > max {
                return Err(RecordError::BadLength { claimed: n, max });
            }
            let mut name = buf[fixed..fixed + n].to_vec();
            if let Some(nul) = name.iter().position(|b| *b == 0) {
                name.truncate(nul);
            }
            Record::Exec {
                hdr,
                filename: name,
            }
        }
        other => return Err(RecordError::UnknownKind(other)),
    })
}

/// The JSON `source` of a record's mechanism.
pub fn source_of(hdr: &EventHeader) -> Source {
    match hdr.source {
        source::FENTRY => Source::Fentry,
        source::KPROBE => Source::Kprobe,
        _ => Source::Tracepoint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: test-only view of a plain struct as bytes.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn layouts_are_stable() {
        assert_eq!(std::mem::size_of::<EventHeader>(), 80);
        assert_eq!(std::mem::size_of::<RouteEvent>(), 80 + 64);
        assert_eq!(std::mem::size_of::<FlushEvent>(), 96);
        assert_eq!(
            std::mem::size_of::<PacketEvent>(),
            104 + tracer_common::PKT_SNAP
        );
        assert_eq!(std::mem::size_of::<FibLookupEvent>(), 152);
        assert_eq!(std::mem::offset_of!(NlMsgEvent, data), 96);
        assert_eq!(std::mem::size_of::<tracer_common::Config>() % 4, 0);
    }

    #[test]
    fn route_record_round_trips() {
        let mut r = RouteEvent::default();
        r.hdr.kind = kind::ROUTE;
        r.hdr.source = source::KPROBE;
        r.table = 52;
        r.dst_len = 24;
        r.ret = -3;
        let Record::Route(back) = parse(&bytes(&r)).unwrap() else {
            panic!()
        };
        assert_eq!(back.table, 52);
        assert_eq!(back.ret, -3);
        assert_eq!(source_of(&back.hdr), Source::Kprobe);
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(
            parse(&[0u8; 10]),
            Err(RecordError::TooShort { .. })
        ));
        let h = EventHeader {
            kind: 99,
            ..EventHeader::default()
        };
        assert_eq!(parse(&bytes(&h)), Err(RecordError::UnknownKind(99)));
        let mut r = RouteEvent::default();
        r.hdr.kind = kind::ROUTE;
        assert!(matches!(
            parse(&bytes(&r)[..100]),
            Err(RecordError::TooShort { .. })
        ));
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
        let Record::Request(c) = parse(&buf).unwrap() else {
            panic!()
        };
        assert_eq!(c.data, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        buf[off..off + 4].copy_from_slice(&9u32.to_ne_bytes());
        assert!(matches!(parse(&buf), Err(RecordError::BadLength { .. })));
    }
}
