//! The packets the tailnet peer writes into the TUN and reads from it:
//! IPv4 ICMP and IPv6 ICMPv6 echo messages, built with their checksums,
//! and what the router sends back, parsed and described on one line.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// Echo request and reply types of one family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Echo {
    Request,
    Reply,
}

impl Echo {
    fn code(self, v6: bool) -> u8 {
        match (self, v6) {
            (Echo::Request, false) => 8,
            (Echo::Reply, false) => 0,
            (Echo::Request, true) => 128,
            (Echo::Reply, true) => 129,
        }
    }

    fn of(t: u8, v6: bool) -> Option<Echo> {
        [Echo::Request, Echo::Reply]
            .into_iter()
            .find(|e| e.code(v6) == t)
    }

    fn name(self) -> &'static str {
        match self {
            Echo::Request => "echo-request",
            Echo::Reply => "echo-reply",
        }
    }
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo message (checksum field zero) of `src`'s family.
pub fn echo(kind: Echo, v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![kind.code(v6), 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// An IPv4 packet (DF set, no options) around an ICMP message, or an IPv6
/// packet around an ICMPv6 message, with the message's checksum computed.
/// `ip_id` is used for IPv4 only; `ttl` is the TTL or hop limit.
pub fn ip_icmp(src: IpAddr, dst: IpAddr, ip_id: u16, ttl: u8, icmp: Vec<u8>) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_icmp(s, d, ip_id, ttl, icmp),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_icmp(s, d, ttl, icmp),
        _ => panic!("{src} and {dst} are of different families"),
    }
}

fn ipv4_icmp(src: Ipv4Addr, dst: Ipv4Addr, ip_id: u16, ttl: u8, mut icmp: Vec<u8>) -> Vec<u8> {
    icmp[2..4].copy_from_slice(&[0, 0]);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut p = Vec::with_capacity(total as usize);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&ip_id.to_be_bytes());
    p.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    p.extend_from_slice(&[ttl, ICMP, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&icmp);
    p
}

fn ipv6_icmp(src: Ipv6Addr, dst: Ipv6Addr, hlim: u8, mut icmp: Vec<u8>) -> Vec<u8> {
    let len = icmp.len() as u32;
    icmp[2..4].copy_from_slice(&[0, 0]);
    // The pseudo-header: addresses, upper-layer length, next header.
    let mut pseudo = Vec::with_capacity(40 + icmp.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    pseudo.extend_from_slice(&icmp);
    let c = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = Vec::with_capacity(40 + icmp.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[ICMPV6, hlim]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&icmp);
    p
}

/// What a packet from the router is, as far as the peer cares.
#[derive(Debug, PartialEq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IP protocol, or the IPv6 next header after a hop-by-hop header.
    pub proto: u8,
    /// The bytes after the IP header(s) (as far as captured).
    pub l4: Vec<u8>,
}

impl Packet {
    fn v6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// (kind, id, seq) when it is an echo request or reply.
    pub fn echo(&self) -> Option<(Echo, u16, u16)> {
        let icmp = if self.v6() { ICMPV6 } else { ICMP };
        let l4 = &self.l4;
        if self.proto != icmp || l4.len() < 8 || l4[1] != 0 {
            return None;
        }
        Some((
            Echo::of(l4[0], self.v6())?,
            u16::from_be_bytes([l4[4], l4[5]]),
            u16::from_be_bytes([l4[6], l4[7]]),
        ))
    }
}

/// The packet, or None (with its length) when it is neither IPv4 nor IPv6.
pub fn parse(p: &[u8]) -> Result<Packet, usize> {
    match p.first().map(|b| b >> 4) {
        Some(4) if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
            let l4 = p.get(ihl.max(20)..total.max(ihl)).unwrap_or(&[]).to_vec();
            Ok(Packet {
                src: IpAddr::from([p[12], p[13], p[14], p[15]]),
                dst: IpAddr::from([p[16], p[17], p[18], p[19]]),
                ttl: p[8],
                proto: p[9],
                l4,
            })
        }
        Some(6) if p.len() >= 40 => {
            let addr = |o: usize| IpAddr::from(<[u8; 16]>::try_from(&p[o..o + 16]).unwrap());
            let l4 = &p[40..];
            // Skip a hop-by-hop options header (MLD reports carry one).
            let (next, l4) = match (p[6], l4.get(..2)) {
                (0, Some(&[n, len])) => (n, l4.get((usize::from(len) + 1) * 8..).unwrap_or(&[])),
                _ => (p[6], l4),
            };
            Ok(Packet {
                src: addr(8),
                dst: addr(24),
                ttl: p[7],
                proto: next,
                l4: l4.to_vec(),
            })
        }
        _ => Err(p.len()),
    }
}

/// One line: "SRC > DST icmp echo-request id 7 seq 1 ttl 63" (IPv6:
/// "icmp6 ..." and "hlim").
pub fn describe(p: &Packet) -> String {
    let (icmp, ttl) = if p.v6() {
        ("icmp6", "hlim")
    } else {
        ("icmp", "ttl")
    };
    let l4 = &p.l4;
    let what = match (p.proto, p.echo()) {
        (_, Some((e, id, seq))) => format!("{icmp} {} id {id} seq {seq}", e.name()),
        (ICMP | ICMPV6, None) if l4.len() >= 2 => {
            format!("{icmp} type {} code {}", l4[0], l4[1])
        }
        (6 | 17, _) if l4.len() >= 4 => format!(
            "{} {} > {}",
            if p.proto == 6 { "tcp" } else { "udp" },
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]])
        ),
        _ => format!("proto {}", p.proto),
    };
    format!("{} > {} {what} {ttl} {}", p.src, p.dst, p.ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_request_is_well_formed() {
        let (src, dst): (IpAddr, IpAddr) = (
            "100.119.140.15".parse().unwrap(),
            "192.168.1.90".parse().unwrap(),
        );
        let p = ip_icmp(
            src,
            dst,
            42,
            64,
            echo(Echo::Request, false, 7, 1, &[1, 2, 3]),
        );
        assert_eq!(p.len(), 20 + 8 + 3);
        assert_eq!(checksum(&p[..20]), 0, "IPv4 header checksum");
        assert_eq!(checksum(&p[20..]), 0, "ICMP checksum");
        let got = parse(&p).unwrap();
        assert_eq!((got.src, got.dst, got.ttl, got.proto), (src, dst, 64, ICMP));
        assert_eq!(got.echo(), Some((Echo::Request, 7, 1)));
        assert_eq!(
            describe(&got),
            "100.119.140.15 > 192.168.1.90 icmp echo-request id 7 seq 1 ttl 64"
        );
    }

    #[test]
    fn ipv6_request_is_well_formed() {
        let (src, dst): (IpAddr, IpAddr) = (
            "fd7a:115c:a1e0::15".parse().unwrap(),
            "fd00:1::90".parse().unwrap(),
        );
        let p = ip_icmp(src, dst, 0, 64, echo(Echo::Request, true, 7, 2, &[9; 5]));
        assert_eq!(p.len(), 40 + 8 + 5);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 13, "payload length");
        // The checksum over the pseudo-header and the message is zero.
        let mut pseudo = p[8..40].to_vec();
        pseudo.extend_from_slice(&13u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
        pseudo.extend_from_slice(&p[40..]);
        assert_eq!(checksum(&pseudo), 0, "ICMPv6 checksum");
        let got = parse(&p).unwrap();
        assert_eq!(
            (got.src, got.dst, got.ttl, got.proto),
            (src, dst, 64, ICMPV6)
        );
        assert_eq!(got.echo(), Some((Echo::Request, 7, 2)));
        assert_eq!(
            describe(&got),
            "fd7a:115c:a1e0::15 > fd00:1::90 icmp6 echo-request id 7 seq 2 hlim 64"
        );
    }
}
