//! Synthetic packet streams on a Tailscale subnet router: tailscale0
//! (ifindex 5) faces the tailnet, enp1s0 (ifindex 2) the LAN.
use std::{net::IpAddr, sync::Arc, time::Duration};

use super::{recent::Recent, *};
use crate::{
    collect::packet::{Direction, L4, LookupObs, PacketObs},
    event::Family,
};

const NS: u32 = 4026531840;
const TS: (u32, &str) = (5, "tailscale0");
const LAN: (u32, &str) = (2, "enp1s0");
const PEER: &str = "100.119.140.15";
const PEER2: &str = "100.80.1.2";
const HOST: &str = "192.168.1.90";
const OWN: &str = "100.98.98.126";
const OWN_LAN: &str = "192.168.1.1";
const PEER6: &str = "fd7a:115c:a1e0::15";
const HOST6: &str = "fd00:1::90";
const OWN6: &str = "fd7a:115c:a1e0::1";
/// An arbitrary boot time.
const T0: u64 = 1_000_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ms(n: u64) -> u64 {
    T0 + n * 1_000_000
}

fn us(n: u64) -> u64 {
    T0 + n * 1_000
}

/// A packet under construction: an ICMP echo request, TTL 64, by default.
#[derive(Clone)]
struct Pkt(PacketObs);

fn rx(ifc: (u32, &str), src: &str, dst: &str) -> Pkt {
    Pkt::new(Direction::Rx, ifc, src, dst)
}

fn tx(ifc: (u32, &str), src: &str, dst: &str) -> Pkt {
    Pkt::new(Direction::Tx, ifc, src, dst)
}

impl Pkt {
    fn new(dir: Direction, (ifindex, iface): (u32, &str), src: &str, dst: &str) -> Pkt {
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
    fn at(mut self, ts: u64) -> Self {
        self.0.ts_ns = ts;
        self
    }
    fn ttl(mut self, ttl: u8) -> Self {
        self.0.ttl = ttl;
        self
    }
    fn id(mut self, id: u16) -> Self {
        self.0.ip_id = Some(id);
        self
    }
    fn len(mut self, len: u32) -> Self {
        self.0.len = len;
        self
    }
    fn echo(mut self, id: u16, seq: u16) -> Self {
        self.0.l4 = L4::Echo {
            request: true,
            id,
            seq,
        };
        self
    }
    fn reply(mut self) -> Self {
        if let L4::Echo { id, seq, .. } = self.0.l4 {
            self.0.l4 = L4::Echo {
                request: false,
                id,
                seq,
            };
        }
        self
    }
    fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.0.proto = 17;
        self.0.l4 = L4::Ports { sport, dport };
        self
    }
    fn time_exceeded(mut self, bytes: Vec<u8>) -> Self {
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
    fn obs(&self) -> PacketObs {
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
    fn brief(&self) -> PacketBrief {
        PacketBrief::of(&self.obs())
    }
}

/// An IPv4 ICMP time exceeded from `src` to `dst` quoting a packet from
/// `qsrc` to `qdst`, as captured from the outer IP header.
fn te_bytes(src: &str, dst: &str, qsrc: &str, qdst: &str) -> Vec<u8> {
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
fn lookup(ts: u64, table: u32, err: i32, dev: &str, src: &str, dst: &str) -> LookupObs {
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

fn det_with(cfg: DetectorConfig) -> Detector {
    let mut d = Detector::new(cfg);
    d.set_own_addrs(NS, [OWN, OWN_LAN, OWN6].map(ip));
    d
}

fn det() -> Detector {
    det_with(DetectorConfig::default())
}

fn feed(d: &mut Detector, pkts: &[&Pkt]) {
    for p in pkts {
        d.packet(&p.obs());
    }
}

fn only_loop(f: &[Finding]) -> &LoopInfo {
    match f {
        [Finding::Loop(i)] => i,
        other => panic!("expected one Loop, got {other:#?}"),
    }
}

/// (kind, packets, new_packets) of each finding.
fn kinds(f: &[Finding]) -> Vec<(&'static str, u64, u64)> {
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
fn run_until(d: &mut Detector, from: u64, to: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        out.extend(d.tick(t));
        t += 20_000_000;
    }
    out
}

#[test]
fn looped_with_snat_is_one_loop_then_ends() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(us(0));
    // Masquerade rewrote the source and the echo id; seq and IP ID stay.
    let looped = tx(TS, OWN, HOST).at(us(30)).ttl(63).echo(41000, 1);
    feed(&mut d, &[&orig, &looped]);
    // No lookup seen: it waits a little for one, then reports without.
    assert!(d.tick(ms(50)).is_empty());
    let f = d.tick(ms(150));
    let i = only_loop(&f);
    assert_eq!(i.netns, NS);
    assert_eq!(i.ifindex, 5);
    assert_eq!(i.iface, "tailscale0");
    assert_eq!(i.family, Family::Inet);
    assert_eq!(i.original, orig.brief());
    assert_eq!(i.looped, looped.brief());
    assert_eq!(i.original.src, ip(PEER));
    assert_eq!(i.looped.src, ip(OWN));
    assert_eq!((i.original.ttl, i.looped.ttl), (64, 63));
    assert_eq!(i.looped.ip_id, Some(0x1234));
    assert!(i.snat);
    assert_eq!((i.packets, i.new_packets, i.ttl_exceeded), (1, 1, 0));
    assert_eq!((i.first_seen_ns, i.last_seen_ns), (us(0), us(30)));
    assert_eq!(i.hairpin, None);
    assert!(i.tables_tried.is_empty());

    assert!(run_until(&mut d, ms(160), ms(5000)).is_empty());
    let f = d.tick(ms(5001));
    assert_eq!(kinds(&f), [("end", 1, 0)]);
    assert_eq!(f[0].info().last_seen_ns, us(30));
    assert!(d.flows.is_empty());
    assert!(d.tick(ms(20_000)).is_empty());
}

#[test]
fn looped_with_unchanged_source() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST)
        .at(ms(1))
        .udp(40000, 53)
        .id(0x0101)
        .ttl(60);
    let looped = tx(TS, PEER, HOST)
        .at(ms(1) + 40_000)
        .udp(40000, 53)
        .id(0x0101)
        .ttl(59);
    feed(&mut d, &[&orig, &looped]);
    let f = d.tick(ms(200));
    let i = only_loop(&f);
    assert!(!i.snat);
    assert_eq!(i.original, orig.brief());
    assert_eq!(i.looped, looped.brief());
    assert_eq!(
        i.original.l4,
        L4::Ports {
            sport: 40000,
            dport: 53
        }
    );
    assert_eq!((i.original.proto, i.packets), (17, 1));
}

#[test]
fn ipv6_matches_on_hop_limit_and_length() {
    let mut d = det();
    let orig = rx(TS, PEER6, HOST6).at(us(0));
    // Same packet but for its length: another one.
    let other = tx(TS, OWN6, HOST6).at(us(20)).ttl(63).len(120);
    let looped = tx(TS, OWN6, HOST6).at(us(30)).ttl(63);
    feed(&mut d, &[&orig, &other, &looped]);
    let f = d.tick(ms(200));
    let i = only_loop(&f);
    assert_eq!(i.family, Family::Inet6);
    assert_eq!(i.original, orig.brief());
    assert_eq!(i.looped, looped.brief());
    assert_eq!((i.original.ip_id, i.looped.ip_id), (None, None));
    assert_eq!((i.original.ttl, i.looped.ttl), (64, 63));
    assert!(i.snat);
    assert_eq!(i.packets, 1);
}

#[test]
fn healthy_forwarding_and_replies_are_not_loops() {
    let mut d = det();
    for seq in 0..5u16 {
        let t = u64::from(seq) * 1000;
        let id = 0x1000 + seq;
        let reply_id = 0x2000 + seq;
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(id).obs());
        d.lookup(&lookup(ms(t) + 5_000, 52, -11, "", PEER, HOST));
        d.lookup(&lookup(ms(t) + 8_000, 254, 0, "enp1s0", PEER, HOST));
        // Out of the LAN, masqueraded.
        let out = tx(LAN, OWN_LAN, HOST).at(ms(t) + 20_000).ttl(63);
        d.packet(&out.echo(7, seq).id(id).obs());
        // The reply to the router's LAN address, de-masqueraded and sent
        // back into the tailnet.
        let back = rx(LAN, HOST, OWN_LAN)
            .at(ms(t) + 400_000)
            .echo(7, seq)
            .reply();
        d.packet(&back.id(reply_id).obs());
        let reply = tx(TS, HOST, PEER).at(ms(t) + 420_000).ttl(63).echo(7, seq);
        d.packet(&reply.reply().id(reply_id).obs());
        // Without masquerade: the reply comes to the peer's address.
        let back = rx(LAN, HOST, PEER).at(ms(t) + 500_000).echo(7, seq).reply();
        d.packet(&back.id(reply_id + 0x100).obs());
        let reply = tx(TS, HOST, PEER).at(ms(t) + 520_000).ttl(63).echo(7, seq);
        d.packet(&reply.reply().id(reply_id + 0x100).obs());
        assert!(d.tick(ms(t + 900)).is_empty());
    }
    assert!(run_until(&mut d, ms(5000), ms(12_000)).is_empty());
    assert!(d.finish(ms(12_001)).is_empty());
    assert!(d.take_capture().is_empty());
}

#[test]
fn router_own_traffic_is_not_a_loop() {
    let mut d = det();
    // A peer pings the router; the router answers.
    let ping = rx(TS, PEER, OWN).at(us(0)).echo(9, 1).id(0x2222);
    let pong = tx(TS, OWN, PEER)
        .at(us(50))
        .echo(9, 1)
        .reply()
        .id(0x2222)
        .ttl(63);
    // The router pings the LAN host itself and, table 52 broken, sends it
    // into tailscale0: never received, so not looped.
    let own_ping = tx(TS, OWN, HOST).at(us(80)).echo(11, 1).id(0x4444);
    // The peer's packet to the router with the same identity as that.
    let to_router = rx(TS, PEER, OWN).at(us(60)).echo(11, 1).id(0x4444).ttl(65);
    feed(&mut d, &[&ping, &pong, &to_router, &own_ping]);
    assert!(run_until(&mut d, ms(0), ms(6000)).is_empty());
    assert!(d.finish(ms(6001)).is_empty());
}

#[test]
fn unrelated_tx_sharing_an_ip_id_is_not_a_loop() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(ms(0)).echo(7, 1).id(0x4242);
    let unrelated = [
        // The router's own ping to the same host: other echo id and seq.
        tx(TS, OWN, HOST).at(ms(1)).ttl(63).echo(9, 5).id(0x4242),
        // Another protocol.
        tx(TS, PEER, HOST)
            .at(ms(2))
            .ttl(63)
            .udp(5000, 5000)
            .id(0x4242),
        // Another destination.
        tx(TS, PEER, "192.168.1.91").at(ms(3)).ttl(63).id(0x4242),
        // A source that is neither the original nor an own address.
        tx(TS, PEER2, HOST).at(ms(4)).ttl(63).id(0x4242),
        // TTL not lower.
        tx(TS, PEER, HOST).at(ms(5)).id(0x4242),
        // Too late.
        tx(TS, PEER, HOST).at(ms(1500)).ttl(63).id(0x4242),
        // The same packet on another interface: forwarded, not looped.
        tx(LAN, PEER, HOST).at(ms(6)).ttl(63).id(0x4242),
    ];
    d.packet(&orig.obs());
    for p in &unrelated {
        d.packet(&p.obs());
    }
    assert!(run_until(&mut d, ms(0), ms(8000)).is_empty());
    assert!(d.take_capture().is_empty());
}

#[test]
fn tx_delivered_before_its_rx_still_matches() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(us(0));
    let looped = tx(TS, OWN, HOST).at(us(30)).ttl(63).echo(41000, 1);
    feed(&mut d, &[&looped, &orig]);
    d.lookup(&lookup(us(10), 52, 0, "tailscale0", PEER, HOST));
    let f = d.tick(ms(1));
    let i = only_loop(&f);
    assert_eq!(i.original, orig.brief());
    assert_eq!(i.looped, looped.brief());
    assert!(i.snat);
    assert_eq!((i.first_seen_ns, i.last_seen_ns), (us(0), us(30)));
    assert_eq!(i.tables_tried, [(52, 0)]);
    assert_eq!(i.packets, 1);
}

#[test]
fn two_flows_at_once_are_counted_apart() {
    let mut d = det();
    // Two pings from the same peer to the same host (echo ids 7 and 8),
    // interleaved; masquerade gives them ids 41000 and 41001.
    for seq in 1..=3u16 {
        let t = u64::from(seq) * 10;
        let a = 0x100 + seq;
        let b = 0x200 + seq;
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(a).obs());
        if seq <= 2 {
            d.packet(&rx(TS, PEER, HOST).at(ms(t + 1)).echo(8, seq).id(b).obs());
            let looped_b = tx(TS, OWN, HOST).at(ms(t + 2)).ttl(63);
            d.packet(&looped_b.echo(41001, seq).id(b).obs());
        }
        let looped_a = tx(TS, OWN, HOST).at(ms(t) + 500_000).ttl(63);
        d.packet(&looped_a.echo(41000, seq).id(a).obs());
    }
    let f = d.tick(ms(200));
    assert_eq!(kinds(&f), [("loop", 3, 3), ("loop", 2, 2)]);
    assert_eq!(
        f[0].info().original.l4,
        L4::Echo {
            request: true,
            id: 7,
            seq: 1
        }
    );
    assert_eq!(
        f[1].info().original.l4,
        L4::Echo {
            request: true,
            id: 8,
            seq: 1
        }
    );
    assert_eq!(
        f[0].info().looped.l4,
        L4::Echo {
            request: true,
            id: 41000,
            seq: 1
        }
    );
    assert_eq!(
        (f[0].info().first_seen_ns, f[0].info().last_seen_ns),
        (ms(10), ms(30) + 500_000)
    );
    assert_eq!(
        (f[1].info().first_seen_ns, f[1].info().last_seen_ns),
        (ms(11), ms(22))
    );
    // Shutdown ends both.
    let f = d.finish(ms(300));
    assert_eq!(kinds(&f), [("end", 3, 0), ("end", 2, 0)]);
    assert!(d.flows.is_empty());
}

#[test]
fn summaries_only_while_looping_then_end_and_restart() {
    let mut d = det_with(DetectorConfig {
        summary_every: Duration::from_secs(2),
        end_after: Duration::from_secs(5),
        ..DetectorConfig::default()
    });
    let mut seen = Vec::new();
    for step in (0..=12_000u64).step_by(100) {
        // Looping every 500 ms until 3 s, and again from 10 s.
        if step % 500 == 0 && (step <= 3000 || step == 10_000) {
            let seq = u16::try_from(step / 500).expect("small") + 1;
            let id = 0x1000 + seq;
            d.packet(&rx(TS, PEER, HOST).at(ms(step)).echo(7, seq).id(id).obs());
            let looped = tx(TS, OWN, HOST).at(ms(step) + 20_000).ttl(63);
            d.packet(&looped.echo(7, seq).id(id).obs());
        }
        for f in d.tick(ms(step)) {
            seen.push((step, kinds(std::slice::from_ref(&f))[0]));
        }
    }
    assert_eq!(
        seen,
        [
            (200, ("loop", 1, 1)),
            (2200, ("summary", 5, 4)),
            (4200, ("summary", 7, 2)),
            // No summary at 6200: nothing new. Last looped at 3 s.
            (8100, ("end", 7, 0)),
            // It restarts: a new loop.
            (10_200, ("loop", 1, 1)),
        ]
    );
}

#[test]
fn repeated_looping_packets_are_one_flow() {
    let mut d = det();
    for seq in 1..=20u16 {
        let t = u64::from(seq) * 10;
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(seq).obs());
        let looped = tx(TS, OWN, HOST).at(ms(t) + 30_000).ttl(63);
        d.packet(&looped.echo(41000, seq).id(seq).obs());
    }
    let f = d.tick(ms(300));
    let i = only_loop(&f);
    assert_eq!((i.packets, i.new_packets), (20, 20));
    assert_eq!(
        i.original.l4,
        L4::Echo {
            request: true,
            id: 7,
            seq: 1
        }
    );
    assert_eq!(
        (i.first_seen_ns, i.last_seen_ns),
        (ms(10), ms(200) + 30_000)
    );
}

#[test]
fn looped_copy_coming_back_stays_in_its_flow() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(us(0));
    let first = tx(TS, OWN, HOST).at(us(30)).ttl(63).echo(41000, 1);
    // The tailnet hands it back; the router loops it again.
    let back = rx(TS, OWN, HOST).at(us(500)).ttl(62).echo(41000, 1);
    let again = tx(TS, OWN, HOST).at(us(530)).ttl(61).echo(41000, 1);
    feed(&mut d, &[&orig, &first, &back, &again]);
    let f = d.tick(ms(200));
    let i = only_loop(&f);
    assert_eq!((i.packets, i.original.src), (2, ip(PEER)));
    assert_eq!(i.looped, first.brief());
    assert_eq!(i.last_seen_ns, us(530));
    assert!(i.snat);
}

#[test]
fn ttl_exceeded_about_the_flow_is_counted() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(us(0));
    let looped = tx(TS, OWN, HOST).at(us(30)).ttl(63).echo(41000, 1);
    let quoting = |src: &str, dst: &str, about: &str| {
        let b = te_bytes(src, dst, PEER, about);
        Pkt::new(Direction::Rx, TS, src, dst).time_exceeded(b)
    };
    // The router tells the peer, delivered before the looped pair.
    let to_source = quoting(OWN, PEER, HOST).at(us(40));
    let to_source = Pkt(PacketObs {
        dir: Direction::Tx,
        ..to_source.0
    });
    d.packet(&to_source.obs());
    feed(&mut d, &[&orig, &looped]);
    // From a tailnet hop, to the masquerade address, quoting the host.
    d.packet(&quoting("100.100.1.1", OWN, HOST).at(us(600)).obs());
    // Header not captured: sent to the source counts.
    d.packet(
        &rx(TS, "100.100.1.1", PEER)
            .at(us(700))
            .time_exceeded(Vec::new())
            .obs(),
    );
    // About another destination; on another interface.
    d.packet(&quoting("100.100.1.1", PEER, "10.0.0.1").at(us(800)).obs());
    let lan = te_bytes(OWN_LAN, PEER, PEER, HOST);
    d.packet(&rx(LAN, OWN_LAN, PEER).at(us(900)).time_exceeded(lan).obs());
    let f = d.tick(ms(200));
    assert_eq!(only_loop(&f).ttl_exceeded, 3);
    // Later ones count too.
    d.packet(&quoting("100.100.1.1", OWN, HOST).at(ms(300)).obs());
    let f = d.finish(ms(400));
    assert_eq!(kinds(&f), [("end", 1, 0)]);
    assert_eq!(f[0].info().ttl_exceeded, 4);
}

#[test]
fn icmpv6_time_exceeded_quote_is_read() {
    let v6 = |s: &str| match ip(s) {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => panic!("IPv6 test address expected"),
    };
    let mut b = vec![0x60, 0, 0, 0, 0, 48, 58, 64];
    b.extend(v6(OWN6));
    b.extend(v6(PEER6));
    b.extend([3, 0, 0, 0, 0, 0, 0, 0]);
    b.extend([0x60, 0, 0, 0, 0, 64, 58, 1]);
    b.extend(v6(PEER6));
    b.extend(v6(HOST6));
    let p = tx(TS, OWN6, PEER6).time_exceeded(b).obs();
    assert!(p.l4.is_time_exceeded());
    let te = matching::TeSeen::of(&p);
    assert_eq!((te.dst, te.about), (ip(PEER6), Some(ip(HOST6))));
    let short = tx(TS, OWN6, PEER6).time_exceeded(vec![0x60, 0, 0]).obs();
    assert_eq!(matching::TeSeen::of(&short).about, None);
}

#[test]
fn hairpin_lookup_is_attached_when_it_arrives_after_the_packets() {
    let mut d = det();
    // The previous ping's lookup, long before: not this packet's.
    d.lookup(&lookup(ms(0), 254, 0, "enp1s0", PEER, HOST));
    let orig = rx(TS, PEER, HOST).at(ms(500));
    let looped = tx(TS, OWN, HOST)
        .at(ms(500) + 30_000)
        .ttl(63)
        .echo(41000, 1);
    feed(&mut d, &[&orig, &looped]);
    let hairpin = lookup(ms(500) + 10_000, 52, 0, "tailscale0", PEER, HOST);
    d.lookup(&hairpin);
    // Another peer's lookup at the same time.
    d.lookup(&lookup(ms(500) + 12_000, 52, 0, "tailscale0", PEER2, HOST));
    // Reported at once: the hairpin is known.
    let f = d.tick(ms(501));
    let i = only_loop(&f);
    assert_eq!(i.hairpin.as_ref(), Some(&hairpin));
    assert_eq!(i.tables_tried, [(52, 0)]);
}

#[test]
fn lookups_seen_before_the_packets_are_attached_in_order() {
    let mut d = det();
    // Here the main table's default also points into tailscale0.
    let main = lookup(us(12), 254, 0, "tailscale0", PEER, HOST);
    d.lookup(&main);
    d.lookup(&lookup(us(8), 52, -11, "", PEER, HOST));
    let orig = rx(TS, PEER, HOST).at(us(0));
    let looped = tx(TS, OWN, HOST).at(us(30)).ttl(63).echo(41000, 1);
    feed(&mut d, &[&orig, &looped]);
    let f = d.tick(ms(1));
    let i = only_loop(&f);
    assert_eq!(i.tables_tried, [(52, -11), (254, 0)]);
    assert_eq!(i.hairpin.as_ref(), Some(&main));
}

#[test]
fn healthy_lookups_and_a_lone_hairpin_lookup_flag_nothing() {
    let mut d = det();
    let orig = rx(TS, PEER, HOST).at(us(0));
    d.packet(&orig.obs());
    d.lookup(&lookup(us(5), 52, -11, "", PEER, HOST));
    d.lookup(&lookup(us(8), 254, 0, "enp1s0", PEER, HOST));
    d.packet(&tx(LAN, OWN_LAN, HOST).at(us(20)).ttl(63).obs());
    // A hairpin decision with no looped packet behind it.
    d.lookup(&lookup(ms(10), 52, 0, "tailscale0", PEER2, HOST));
    assert!(run_until(&mut d, ms(0), ms(6000)).is_empty());
    assert!(d.finish(ms(6001)).is_empty());
}

#[test]
fn capture_holds_originals_and_looped_copies_of_loops_only() {
    let mut d = det();
    let healthy = rx(TS, PEER2, "192.168.1.91").at(us(0)).id(0x5555);
    let forwarded = tx(LAN, OWN_LAN, "192.168.1.91")
        .at(us(20))
        .ttl(63)
        .id(0x5555);
    let orig = rx(TS, PEER, HOST).at(us(100));
    let looped = tx(TS, OWN, HOST).at(us(130)).ttl(63).echo(41000, 1);
    feed(&mut d, &[&healthy, &forwarded, &looped, &orig]);
    let c = d.take_capture();
    assert_eq!(
        c,
        [(us(100), orig.obs().bytes), (us(130), looped.obs().bytes)]
    );
    assert!(d.take_capture().is_empty());

    // Kept per flow up to capture_per_flow.
    let mut d = det_with(DetectorConfig {
        capture_per_flow: 3,
        ..DetectorConfig::default()
    });
    let mut want = Vec::new();
    for seq in 1..=3u16 {
        let t = u64::from(seq) * 10;
        let o = rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(seq);
        let l = tx(TS, OWN, HOST)
            .at(ms(t) + 30_000)
            .ttl(63)
            .echo(41000, seq)
            .id(seq);
        feed(&mut d, &[&o, &l]);
        want.push((o.0.ts_ns, o.obs().bytes));
        want.push((l.0.ts_ns, l.obs().bytes));
    }
    want.truncate(3);
    assert_eq!(d.take_capture(), want);
}

#[test]
fn state_is_bounded_and_pruned() {
    let mut r = Recent::new(4);
    let brief = |ts: u64, id: u16| rx(TS, PEER, HOST).at(ts).id(id).brief();
    for i in 0..10u16 {
        r.push(recent::Entry::new(
            brief(ms(u64::from(i)), i),
            Arc::from(&[][..]),
        ));
    }
    assert_eq!(r.len(), 4);
    assert!(r.get(5).is_none());
    assert_eq!(r.get(6).map(|e| e.p.ip_id), Some(Some(6)));
    assert!(r.bucket(&MatchKey::of(&brief(0, 1))).is_empty());
    assert_eq!(r.bucket(&MatchKey::of(&brief(0, 9))), [9]);
    r.prune(ms(8));
    assert_eq!(r.len(), 2);

    let mut d = det();
    for seq in 1..=100u16 {
        let t = u64::from(seq);
        d.packet(&rx(TS, PEER, HOST).at(ms(t)).echo(7, seq).id(seq).obs());
        d.lookup(&lookup(ms(t) + 5_000, 254, 0, "enp1s0", PEER, HOST));
    }
    let looped = tx(TS, OWN, HOST)
        .at(ms(100) + 30_000)
        .ttl(63)
        .echo(41000, 100)
        .id(100);
    d.packet(&looped.obs());
    assert_eq!(d.flows.len(), 1);
    assert!(!d.ifaces.is_empty());
    run_until(&mut d, ms(200), ms(6000));
    assert!(d.flows.is_empty());
    assert!(d.ifaces.is_empty());
    assert!(d.awaiting.is_empty());
    assert_eq!(d.lookups.iter().count(), 0);
}
