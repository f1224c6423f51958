//! The packet programs pair a transmission with a reception in the kernel
//! by a loose identity (`tracer_common::pair`), and only pairs reach the
//! detector. So every pair the detector calls a loop must have equal
//! identities on both sides, or the kernel would never send it. These
//! tests build real packets (etherparse), decode them as userspace does,
//! and hold the identity the programs compute from the same bytes against
//! `matching::looped`.
use std::{collections::HashSet, net::IpAddr};

use etherparse::PacketBuilder;
use tracer_common::{
    EventHeader, PKT_SNAP, PacketEvent, WatchKey, dir,
    pair::{Addr, Ip, PairKey, SNAP_WORDS},
};

use super::{PacketBrief, matching};
use crate::collect::packet_decode as decode;

const IFACE: WatchKey = WatchKey {
    netns: 4026531840,
    ifindex: 5,
};
const PEER: [u8; 4] = [100, 119, 140, 15];
const HOST: [u8; 4] = [192, 168, 1, 90];
const OWN: [u8; 4] = [100, 98, 98, 126];
const PEER6: [u8; 16] = [
    0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x15,
];
const HOST6: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x90];

/// The first PKT_SNAP bytes as the programs load them: little-endian words.
fn words(bytes: &[u8]) -> [u64; SNAP_WORDS] {
    let mut b = [0u8; PKT_SNAP];
    let n = bytes.len().min(PKT_SNAP);
    b[..n].copy_from_slice(&bytes[..n]);
    std::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap()))
}

fn key(bytes: &[u8]) -> PairKey {
    Ip::parse(&words(bytes)).expect("an IP packet").key(&IFACE)
}

/// The detector's view of the packet (the userspace decoder).
fn brief(bytes: &[u8], d: u8, ts_ns: u64) -> PacketBrief {
    let mut data = [0u8; PKT_SNAP];
    let n = bytes.len().min(PKT_SNAP);
    data[..n].copy_from_slice(&bytes[..n]);
    let ev = PacketEvent {
        hdr: EventHeader {
            ts_ns,
            netns: IFACE.netns,
            ..EventHeader::default()
        },
        ifindex: IFACE.ifindex,
        skb_len: bytes.len() as u32,
        mark: 0,
        dir: d,
        _pad0: 0,
        protocol: if bytes[0] >> 4 == 4 { 0x0800 } else { 0x86dd },
        cap_len: PKT_SNAP as u32,
        _pad1: 0,
        data,
    };
    PacketBrief::of(&decode::packet(&ev, "tailscale0").expect("decodes"))
}

fn own() -> HashSet<IpAddr> {
    [IpAddr::from(OWN)].into_iter().collect()
}

/// The detector pairs `rx` with `tx`; the programs must too.
fn assert_paired(rx: &[u8], tx: &[u8]) {
    let (r, t) = (brief(rx, dir::RX, 1_000), brief(tx, dir::TX, 2_000));
    assert!(
        matching::looped(&r, &t, Some(&own()), 1_000_000_000).is_some(),
        "the detector pairs these: {r:?} / {t:?}"
    );
    assert_eq!(key(rx), key(tx), "identities of {r:?} / {t:?}");
}

/// Sets the IPv4 ID (the builder writes 0) and the TTL.
fn v4(mut bytes: Vec<u8>, id: u16, ttl: u8) -> Vec<u8> {
    bytes[4..6].copy_from_slice(&id.to_be_bytes());
    bytes[8] = ttl;
    bytes
}

fn echo4(src: [u8; 4], echo_id: u16, seq: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, HOST, 64)
        .icmpv4_echo_request(echo_id, seq)
        .write(&mut out, &[0u8; 56])
        .unwrap();
    out
}

fn udp4(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, HOST, 64)
        .udp(sport, dport)
        .write(&mut out, &[1u8; 20])
        .unwrap();
    out
}

#[test]
fn masqueraded_echo_is_paired() {
    // The lab's loop: the source becomes the router's address and
    // masquerade may pick another echo id; the IP ID stays.
    let rx = v4(echo4(PEER, 7, 1), 0xbeef, 64);
    let tx = v4(echo4(OWN, 1234, 1), 0xbeef, 63);
    assert_paired(&rx, &tx);
}

#[test]
fn masqueraded_udp_is_paired() {
    let rx = v4(udp4(PEER, 40000, 53), 77, 64);
    let tx = v4(udp4(OWN, 61000, 53), 77, 63);
    assert_paired(&rx, &tx);
}

#[test]
fn unchanged_tcp_is_paired() {
    let mut rx = Vec::new();
    PacketBuilder::ipv4(PEER, HOST, 64)
        .tcp(40000, 443, 1, 1000)
        .write(&mut rx, &[2u8; 30])
        .unwrap();
    let rx = v4(rx, 9, 64);
    let tx = v4(rx.clone(), 9, 63);
    assert_paired(&rx, &tx);
}

#[test]
fn ipv4_with_options_is_paired_and_time_exceeded_found() {
    // IHL 6: four bytes of options (NOP NOP NOP EOL) before the ICMP header.
    let with_options = |b: Vec<u8>| {
        let mut o = b[..20].to_vec();
        o.extend_from_slice(&[1, 1, 1, 0]);
        o.extend_from_slice(&b[20..]);
        o[0] = 0x46;
        let len = (o.len() as u16).to_be_bytes();
        o[2..4].copy_from_slice(&len);
        o
    };
    let rx = with_options(v4(echo4(PEER, 7, 3), 5, 64));
    let tx = with_options(v4(echo4(PEER, 7, 3), 5, 63));
    assert_paired(&rx, &tx);
    assert!(!Ip::parse(&words(&rx)).unwrap().time_exceeded());
    // The ICMP type after the options: time exceeded.
    let mut te = rx.clone();
    te[24] = 11;
    assert!(Ip::parse(&words(&te)).unwrap().time_exceeded());
}

fn v6(mut bytes: Vec<u8>, hop_limit: u8) -> Vec<u8> {
    bytes[7] = hop_limit;
    bytes
}

#[test]
fn ipv6_echo_and_udp_are_paired() {
    let mut rx = Vec::new();
    PacketBuilder::ipv6(PEER6, HOST6, 64)
        .icmpv6_echo_request(7, 2)
        .write(&mut rx, &[0u8; 56])
        .unwrap();
    assert_paired(&rx, &v6(rx.clone(), 63));

    let mut rx = Vec::new();
    PacketBuilder::ipv6(PEER6, HOST6, 64)
        .udp(4000, 53)
        .write(&mut rx, &[1u8; 100])
        .unwrap();
    assert_paired(&rx, &v6(rx.clone(), 63));
    assert!(!Ip::parse(&words(&rx)).unwrap().time_exceeded());

    // ICMPv6 type 3: time exceeded.
    let mut te = Vec::new();
    PacketBuilder::ipv6(HOST6, PEER6, 64)
        .icmpv6_raw(3, 0, [0; 4])
        .write(&mut te, &[0u8; 48])
        .unwrap();
    assert!(Ip::parse(&words(&te)).unwrap().time_exceeded());
}

#[test]
fn other_packets_have_other_identities() {
    let a = v4(echo4(PEER, 7, 1), 100, 64);
    // Another IP ID, another destination, another protocol.
    assert_ne!(key(&a), key(&v4(echo4(PEER, 7, 1), 101, 63)));
    let mut other_dst = a.clone();
    other_dst[19] = 91;
    assert_ne!(key(&a), key(&other_dst));
    assert_ne!(key(&a), key(&v4(udp4(PEER, 7, 1), 100, 63)));
    // The same packet on another interface.
    let w = words(&a);
    let other_iface = WatchKey {
        ifindex: 6,
        ..IFACE
    };
    assert_ne!(
        Ip::parse(&w).unwrap().key(&IFACE),
        Ip::parse(&w).unwrap().key(&other_iface)
    );
    assert_eq!(Ip::parse(&w).unwrap().key(&IFACE).iface(), IFACE);
}

/// Addresses come out in the layout of the FIB lookup records (IPv4 in
/// the first four bytes of sixteen), so the programs can compare them.
#[test]
fn addresses_and_ttl() {
    let bytes_of = |a: Addr| -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&a[0].to_le_bytes());
        b[8..].copy_from_slice(&a[1].to_le_bytes());
        b
    };
    let p = v4(echo4(PEER, 7, 1), 1, 61);
    let w = words(&p);
    let ip = Ip::parse(&w).unwrap();
    let (s, d) = ip.addrs();
    assert_eq!(&bytes_of(s)[..4], &PEER);
    assert_eq!(&bytes_of(d)[..4], &HOST);
    assert_eq!(bytes_of(d)[4..], [0; 12]);
    assert_eq!(ip.ttl(), 61);

    let mut p6 = Vec::new();
    PacketBuilder::ipv6(PEER6, HOST6, 9)
        .udp(1, 2)
        .write(&mut p6, &[])
        .unwrap();
    let w = words(&p6);
    let ip = Ip::parse(&w).unwrap();
    let (s, d) = ip.addrs();
    assert_eq!((bytes_of(s), bytes_of(d), ip.ttl()), (PEER6, HOST6, 9));
    assert!(Ip::parse(&words(&[0x10; 20])).is_none());
}
