//! Which pairs of packets are loops: a packet received on an interface
//! and sent back out of it with a lower TTL, its source unchanged or
//! masqueraded; not healthy forwarding, replies, the router's own traffic
//! or an unrelated packet sharing an IP id; in either order across CPUs.
use super::test_stream::*;
use crate::{collect::packet::L4, event::Family};

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
