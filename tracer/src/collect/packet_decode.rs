//! From packet-path records to [`PacketObs`] and [`LookupObs`]: IP and
//! ICMP/TCP/UDP headers are parsed with `etherparse` from the bytes the
//! program copied (the wire format, not a kernel layout).
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use etherparse::{Icmpv4Type, Icmpv6Type, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use tracer_common::{FibLookupEvent, PacketEvent, dir};

use super::packet::{Direction, L4, LookupObs, PacketObs};
use crate::{escape::comm_from_bytes, event::Family};

/// Why a packet record yielded no observation.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PacketError {
    #[error("the packet's bytes could not be read in the kernel")]
    NotCaptured,
    #[error("not an IPv4/IPv6 packet: {0}")]
    NotIp(String),
}

/// Decodes a packet record; `iface` is the name of its interface.
pub fn packet(ev: &PacketEvent, iface: &str) -> Result<PacketObs, PacketError> {
    let cap = &ev.data[..(ev.cap_len as usize).min(ev.data.len())];
    if cap.is_empty() {
        return Err(PacketError::NotCaptured);
    }
    let sliced = LaxSlicedPacket::from_ip(cap).map_err(|e| PacketError::NotIp(e.to_string()))?;
    // `payload`: what the decoder took for the IP payload, which ends
    // where the packet does as it read it.
    let (family, src, dst, ttl, ip_id, len, proto, payload) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                Family::Inet,
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                Some(h.identification()),
                u32::from(h.total_len()),
                v4.payload().ip_number.0,
                v4.payload().payload,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                Family::Inet6,
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                None,
                u32::from(h.payload_length()) + 40,
                v6.payload().ip_number.0,
                v6.payload().payload,
            )
        }
        _ => return Err(PacketError::NotIp("no IP header".into())),
    };
    let l4 = l4_of(&sliced, family);
    // For pcap: the bytes of this packet as the decoder read it, at most
    // what was captured. That is the header's length, unless the length is
    // shorter than the header itself (the decoder then read what was
    // captured; cutting at the length kept a byte or two, which decode
    // to nothing; found by the pcap fuzz target).
    let end = payload.as_ptr() as usize + payload.len() - cap.as_ptr() as usize;
    let keep = end.clamp(1, cap.len());
    Ok(PacketObs {
        ts_ns: ev.hdr.ts_ns,
        netns: ev.hdr.netns,
        ifindex: ev.ifindex,
        iface: iface.to_string(),
        dir: if ev.dir == dir::TX {
            Direction::Tx
        } else {
            Direction::Rx
        },
        family,
        src,
        dst,
        proto,
        ttl,
        ip_id,
        l4,
        len,
        mark: ev.mark,
        bytes: Arc::from(&cap[..keep]),
    })
}

/// The transport-level identity of a packet: echo id and sequence, ICMP
/// type and code, or ports.
fn l4_of(sliced: &LaxSlicedPacket<'_>, family: Family) -> L4 {
    // ICMP and ICMPv6: (echo request?, echo header) for echoes, else the
    // message's type and code.
    let icmp = match &sliced.transport {
        Some(TransportSlice::Icmpv4(i)) => Some((
            match i.icmp_type() {
                Icmpv4Type::EchoRequest(e) => Some((true, e)),
                Icmpv4Type::EchoReply(e) => Some((false, e)),
                _ => None,
            },
            i.type_u8(),
            i.code_u8(),
        )),
        Some(TransportSlice::Icmpv6(i)) => Some((
            match i.icmp_type() {
                Icmpv6Type::EchoRequest(e) => Some((true, e)),
                Icmpv6Type::EchoReply(e) => Some((false, e)),
                _ => None,
            },
            i.type_u8(),
            i.code_u8(),
        )),
        _ => None,
    };
    match (icmp, &sliced.transport) {
        (Some((Some((request, e)), _, _)), _) => L4::Echo {
            request,
            id: e.id,
            seq: e.seq,
        },
        (Some((None, icmp_type, code)), _) => L4::Icmp {
            family,
            icmp_type,
            code,
        },
        (None, Some(TransportSlice::Udp(u))) => L4::Ports {
            sport: u.source_port(),
            dport: u.destination_port(),
        },
        (None, Some(TransportSlice::Tcp(t))) => L4::Ports {
            sport: t.source_port(),
            dport: t.destination_port(),
        },
        _ => L4::Other,
    }
}

/// Decodes a FIB lookup record.
pub fn lookup(ev: &FibLookupEvent) -> Option<LookupObs> {
    let family = Family::from_af(ev.family)?;
    let addr = |b: &[u8; 16]| match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::from(*b)),
    };
    Some(LookupObs {
        ts_ns: ev.hdr.ts_ns,
        netns: ev.hdr.netns,
        family,
        table: ev.table,
        err: ev.err,
        iif: ev.iif.max(0) as u32,
        oif: ev.oif.max(0) as u32,
        result_dev: comm_from_bytes(&ev.dev),
        src: addr(&ev.src),
        dst: addr(&ev.dst),
        proto: ev.proto,
        sport: ev.sport,
        dport: ev.dport,
    })
}

/// The record the packet path writes for a packet whose first bytes are
/// `bytes`, seen in direction `d` on interface 3 of the initial namespace:
/// a fixture for the decoder's tests and the pcap fuzz target.
#[doc(hidden)]
pub fn capture_of(bytes: &[u8], d: u8) -> PacketEvent {
    let mut data = [0u8; tracer_common::PKT_SNAP];
    let n = bytes.len().min(data.len());
    data[..n].copy_from_slice(&bytes[..n]);
    PacketEvent {
        hdr: tracer_common::EventHeader {
            ts_ns: 7,
            netns: 4026531840,
            ..Default::default()
        },
        ifindex: 3,
        skb_len: bytes.len() as u32,
        mark: 0x40000,
        dir: d,
        _pad0: 0,
        protocol: 0,
        cap_len: n as u32,
        _pad1: 0,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use tracer_common::PKT_SNAP;

    #[test]
    fn icmp_echo_v4() {
        let b = PacketBuilder::ipv4([100, 119, 140, 15], [192, 168, 1, 90], 64)
            .icmpv4_echo_request(7, 3);
        let mut bytes = Vec::new();
        b.write(&mut bytes, &[0u8; 56]).unwrap();
        let mut r = capture_of(&bytes, dir::RX);
        // A capture that says it holds more than the packet: what follows
        // the packet is not kept.
        r.cap_len = PKT_SNAP as u32;
        let p = packet(&r, "tailscale0").unwrap();
        assert_eq!(p.src, "100.119.140.15".parse::<IpAddr>().unwrap());
        assert_eq!(p.dst, "192.168.1.90".parse::<IpAddr>().unwrap());
        assert_eq!(p.ttl, 64);
        assert_eq!(p.proto, 1);
        assert_eq!(p.len, 84);
        assert_eq!(p.dir, Direction::Rx);
        assert_eq!(p.mark, 0x40000);
        assert_eq!(
            p.l4,
            L4::Echo {
                request: true,
                id: 7,
                seq: 3
            }
        );
        // Snapshot: the first PKT_SNAP bytes of an 84-byte packet are all of it.
        assert_eq!(p.bytes.len(), 84);
    }

    #[test]
    fn udp_v6_truncated_capture() {
        let b = PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 5).udp(4000, 53);
        let mut bytes = Vec::new();
        b.write(&mut bytes, &[1u8; 500]).unwrap();
        let p = packet(&capture_of(&bytes, dir::TX), "tailscale0").unwrap();
        assert_eq!(p.family, Family::Inet6);
        assert_eq!(p.ttl, 5);
        assert_eq!(p.ip_id, None);
        assert_eq!(p.len, 40 + 8 + 500);
        assert_eq!(
            p.l4,
            L4::Ports {
                sport: 4000,
                dport: 53
            }
        );
        assert_eq!(p.bytes.len(), PKT_SNAP);
        assert_eq!(p.dir, Direction::Tx);
    }

    /// An IPv4 total length shorter than the header: the packet is what
    /// was captured, not its first byte.
    #[test]
    fn a_length_shorter_than_the_header_keeps_the_capture() {
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 9).udp(1, 2);
        let mut bytes = Vec::new();
        b.write(&mut bytes, &[7u8; 12]).unwrap();
        bytes[2..4].copy_from_slice(&1u16.to_be_bytes());
        let p = packet(&capture_of(&bytes, dir::RX), "x").unwrap();
        assert_eq!(p.len, 1);
        assert_eq!(&p.bytes[..], &bytes[..]);
        let again = packet(&capture_of(&p.bytes, dir::RX), "x").unwrap();
        assert_eq!((again.src, again.dst, again.ttl), (p.src, p.dst, p.ttl));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut r = capture_of(&[0x45, 0, 0], dir::RX);
        r.data = [0xff; PKT_SNAP];
        assert!(matches!(packet(&r, "x"), Err(PacketError::NotIp(_))));
        r.cap_len = 0;
        assert_eq!(packet(&r, "x"), Err(PacketError::NotCaptured));
    }
}
