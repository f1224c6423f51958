//! Synthetic packet streams on a Tailscale subnet router, for the
//! detector's tests: tailscale0 (ifindex 5) faces the tailnet, enp1s0
//! (ifindex 2) the LAN. Packets are built with `rx`/`tx` and adjusted
//! (`at`, `ttl`, `id`, `echo`, ...); `det` is a detector that knows the
//! router's own addresses.
use std::{net::IpAddr, sync::Arc};

use super::*;
use crate::{
    collect::packet::{Direction, L4, LookupObs, PacketObs},
    event::Family,
};

pub(super) const NS: u32 = 4026531840;
pub(super) const TS: (u32, &str) = (5, "tailscale0");
pub(super) const LAN: (u32, &str) = (2, "enp1s0");
pub(super) const PEER: &str = "100.119.140.15";
pub(super) const PEER2: &str = "100.80.1.2";
pub(super) const HOST: &str = "192.168.1.90";
pub(super) const OWN: &str = "100.98.98.126";
pub(super) const OWN_LAN: &str = "192.168.1.1";
pub(super) const PEER6: &str = "fd7a:115c:a1e0::15";
pub(super) const HOST6: &str = "fd00:1::90";
pub(super) const OWN6: &str = "fd7a:115c:a1e0::1";
/// An arbitrary boot time.
pub(super) const T0: u64 = 1_000_000_000_000;

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub(super) fn ms(n: u64) -> u64 {
    T0 + n * 1_000_000
}

pub(super) fn us(n: u64) -> u64 {
    T0 + n * 1_000
}

/// A packet under construction: an ICMP echo request, TTL 64, by default.
#[derive(Clone)]
pub(super) struct Pkt(pub(super) PacketObs);

pub(super) fn rx(ifc: (u32, &str), src: &str, dst: &str) -> Pkt {
    Pkt::new(Direction::Rx, ifc, src, dst)
}

pub(super) fn tx(ifc: (u32, &str), src: &str, dst: &str) -> Pkt {
    Pkt::new(Direction::Tx, ifc, src, dst)
}

impl Pkt {
    pub(super) fn new(dir: Direction, (ifindex, iface): (u32, &str), src: &str, dst: &str) -> Pkt {
        let (src, dst) = (ip(src), ip(dst));
        let v6 = dst.is_ipv6();
        Pkt(PacketObs {
            ts_ns: T0,
            netns: NS,
            ifindex,
            iface: iface.into(),
            dir,
            family: if v6 { Family::Inet6 } else { Family::Inet },
            src,
            dst,
            proto: if v6 { 58 } else { 1 },
            ttl: 64,
            ip_id: if v6 { None } else { Some(0x1234) },
            l4: L4::Echo {
                request: true,
                id: 7,
                seq: 1,
            },
            len: if v6 { 104 } else { 84 },
            mark: 0,
            bytes: Arc::from(&[][..]),
        })
    }
    pub(super) fn at(mut self, ts: u64) -> Self {
        self.0.ts_ns = ts;
        self
    }
    pub(super) fn ttl(mut self, ttl: u8) -> Self {
        self.0.ttl = ttl;
        self
    }
    pub(super) fn id(mut self, id: u16) -> Self {
        self.0.ip_id = Some(id);
        self
    }
    pub(super) fn len(mut self, len: u32) -> Self {
        self.0.len = len;
        self
    }
    pub(super) fn echo(mut self, id: u16, seq: u16) -> Self {
        self.0.l4 = L4::Echo {
            request: true,
            id,
            seq,
        };
        self
    }
    pub(super) fn reply(mut self) -> Self {
        if let L4::Echo { id, seq, .. } = self.0.l4 {
            self.0.l4 = L4::Echo {
                request: false,
                id,
                seq,
            };
        }
        self
    }
    pub(super) fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.0.proto = 17;
        self.0.l4 = L4::Ports { sport, dport };
        self
    }
    pub(super) fn time_exceeded(mut self, bytes: Vec<u8>) -> Self {
        self.0.l4 = L4::Icmp {
            family: self.0.family,
            icmp_type: if self.0.family == Family::Inet { 11 } else { 3 },
            code: 0,
        };
        self.0.bytes = Arc::from(bytes);
        self
    }
    /// The observation; unless set, its bytes are a tag naming it, so
    /// captures can be told apart.
    pub(super) fn obs(&self) -> PacketObs {
        let mut p = self.0.clone();
        if p.bytes.is_empty() && !p.l4.is_time_exceeded() {
            let tag = format!(
                "{:?} {} {}>{} ttl {} id {:?} {:?} at {}",
                p.dir, p.ifindex, p.src, p.dst, p.ttl, p.ip_id, p.l4, p.ts_ns
            );
            p.bytes = Arc::from(tag.as_bytes());
        }
        p
    }
    pub(super) fn brief(&self) -> PacketBrief {
        PacketBrief::of(&self.obs())
    }
}

/// An IPv4 ICMP time exceeded from `src` to `dst` quoting a packet from
/// `qsrc` to `qdst`, as captured from the outer IP header.
pub(super) fn te_bytes(src: &str, dst: &str, qsrc: &str, qdst: &str) -> Vec<u8> {
    let v4 = |s: &str| match ip(s) {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => panic!("IPv4 test address expected"),
    };
    let mut b = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0];
    b.extend(v4(src));
    b.extend(v4(dst));
    b.extend([11, 0, 0, 0, 0, 0, 0, 0]);
    b.extend([0x45, 0, 0, 84, 0x12, 0x34, 0, 0, 1, 1, 0, 0]);
    b.extend(v4(qsrc));
    b.extend(v4(qdst));
    b.extend([8, 0, 0, 0, 0, 7, 0, 1]);
    b
}

/// A FIB lookup for a packet that came in on tailscale0.
pub(super) fn lookup(ts: u64, table: u32, err: i32, dev: &str, src: &str, dst: &str) -> LookupObs {
    let (src, dst) = (ip(src), ip(dst));
    LookupObs {
        ts_ns: ts,
        netns: NS,
        family: if dst.is_ipv6() {
            Family::Inet6
        } else {
            Family::Inet
        },
        table,
        err,
        iif: TS.0,
        oif: match dev {
            "tailscale0" => TS.0,
            "enp1s0" => LAN.0,
            _ => 0,
        },
        result_dev: dev.into(),
        src,
        dst,
        proto: 0,
        sport: 0,
        dport: 0,
    }
}

pub(super) fn det_with(cfg: DetectorConfig) -> Detector {
    let mut d = Detector::new(cfg);
    d.set_own_addrs(NS, [OWN, OWN_LAN, OWN6].map(ip));
    d
}

pub(super) fn det() -> Detector {
    det_with(DetectorConfig::default())
}

pub(super) fn feed(d: &mut Detector, pkts: &[&Pkt]) {
    for p in pkts {
        d.packet(&p.obs());
    }
}

pub(super) fn only_loop(f: &[Finding]) -> &LoopInfo {
    match f {
        [Finding::Loop(i)] => i,
        other => panic!("expected one Loop, got {other:#?}"),
    }
}

/// (kind, packets, new_packets) of each finding.
pub(super) fn kinds(f: &[Finding]) -> Vec<(&'static str, u64, u64)> {
    f.iter()
        .map(|f| {
            let k = match f {
                Finding::Loop(_) => "loop",
                Finding::Summary(_) => "summary",
                Finding::End(_) => "end",
            };
            (k, f.info().packets, f.info().new_packets)
        })
        .collect()
}

/// Tick every 20 ms up to `to`, collecting everything.
pub(super) fn run_until(d: &mut Detector, from: u64, to: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        out.extend(d.tick(t));
        t += 20_000_000;
    }
    out
}
