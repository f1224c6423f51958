//! Evidence attached to a loop: ICMP time-exceeded messages about its
//! flow (IPv4 and IPv6 quotes) and the FIB lookups made for its packets,
//! whichever arrives first; evidence alone flags nothing.
use std::net::IpAddr;

use super::{test_stream::*, *};
use crate::collect::packet::{Direction, PacketObs};

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
