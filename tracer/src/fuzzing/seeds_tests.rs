//! The fuzz targets' seeds, from real bytes: the request-form corpus
//! (`tests/forms/`, captured from iproute2, systemd-networkd, libnl, Go and
//! raw senders), a namespace's links, addresses, routes, rules and nexthop
//! objects as the kernel dumps them (root), the journal fixtures, packets
//! as the lab's peer sends them, and the texts the documentation shows.
//!
//! Not a test: `cargo test --release -p tracer write_fuzz_seeds -- --ignored`
//! (as root, for the kernel's dumps) writes them to `target/fuzz-seeds/`;
//! `cargo fuzz cmin` then keeps what adds coverage in
//! `tracer/fuzz/corpus/` (README, "Fuzzing").
use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;
use tracer_common::{
    EventHeader, ExecEvent, FibLookupEvent, FlushEvent, NL_DATA_MAX, NlAckEvent, NlMsgEvent,
    PATH_MAX_COPY, PKT_SNAP, PacketEvent, Record, RouteEvent, RuleMsgEvent, af, dir, kind, op,
    source, syscall,
};

use crate::{
    netlink::{
        forms_tests::unhex,
        nexthop_msg,
        socket::{dump_raw_request, dump_request, dump_socket},
    },
    test_util::{Netns, root_or_skip},
};

const FORMS: &[&str] = &[
    include_str!("../../../tests/forms/iproute2-rule.forms"),
    include_str!("../../../tests/forms/iproute2-route.forms"),
    include_str!("../../../tests/forms/networkd.forms"),
    include_str!("../../../tests/forms/libnl.forms"),
    include_str!("../../../tests/forms/go.forms"),
    include_str!("../../../tests/forms/raw.forms"),
];

const JOURNALS: &[&str] = &[
    "fleet-a.journal",
    "fleet-b.journal",
    "lab-incident.jsonl",
    "lab-recorded.journal",
    "lab-recovered.journal",
    "link-del.journal",
];

const EXPECTATIONS: &[&str] = &[
    "throw 192.168.1.0/24 table 52",
    "rule 5270 table 52",
    "rule 5270 lookup tailscale",
    "default dev tailscale0 table 52",
    "rule 5210 fwmark 0x80000/0xff0000 table main",
    "rule 5250 unreachable",
    "-6 default table 52",
    "-6 rule 5270 from 2001:db8::/32 to fd00::/8 iif eth0 oif wg0 table 52",
    "2001:db8::/32 table 52 metric 1024 proto static",
    "unreachable 10.0.0.0/8 via 192.168.7.1 metric 0x10 table 100",
    "10.1.2.3",
];

const TIMES: &[&str] = &[
    "2026-04-10 15:52:46",
    "2026-04-10T15:52:46.130211",
    "26-04-10 15:52",
    "Fri 2026-04-10 15:52:46 UTC",
    "2026-04-10T06:52:46.130211Z",
    "2026-04-10T15:52:46+09:00",
    "@1775803966.5",
    "@-1.25",
    "15:52 UTC",
    "yesterday",
    "1h 30min ago",
    "-30s",
    "5min left",
];

const IFACES: &[&str] = &["tailscale0", "router:tailscale0", "lab-7:veth0", "wg0"];

fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("fuzz-seeds")
}

struct Seeds(PathBuf);

impl Seeds {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).expect("seed directory");
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}

fn bytes_of<T: Record>(v: &T) -> Vec<u8> {
    // SAFETY: a Record is #[repr(C)] of integers with explicit padding.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }.to_vec()
}

fn header(kind: u16) -> EventHeader {
    let mut h = EventHeader {
        kind,
        source: source::TRACEPOINT,
        ts_ns: 123_456_789,
        pid: 4242,
        tid: 4242,
        ppid: 1,
        netns: 4026531840,
        cgroup_id: 7,
        ..EventHeader::default()
    };
    h.comm[..2].copy_from_slice(b"ip");
    h.parent_comm[..4].copy_from_slice(b"bash");
    h
}

/// The request messages of the form corpus, one by one.
fn form_dgrams() -> Vec<Vec<u8>> {
    FORMS
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|l| l.strip_prefix("msg "))
        .map(|hex| unhex(hex.split_whitespace().next().unwrap_or("")))
        .collect()
}

/// The ring-buffer records a request and its kernel hooks make.
fn records(dgrams: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, d) in dgrams.iter().enumerate() {
        let n = d.len().min(NL_DATA_MAX);
        let mut data = [0u8; NL_DATA_MAX];
        data[..n].copy_from_slice(&d[..n]);
        let ev = NlMsgEvent {
            hdr: header(if i % 2 == 0 {
                kind::NL_REQUEST
            } else {
                kind::RULE
            }),
            syscall: syscall::SENDMSG,
            truncated: u8::from(d.len() > NL_DATA_MAX),
            _pad0: 0,
            fd: 3,
            ret: 0,
            data_len: n as u32,
            data,
        };
        // The programs send the fixed part and the data only.
        let mut b = if i % 2 == 0 {
            bytes_of(&ev)
        } else {
            bytes_of(&RuleMsgEvent(ev))
        };
        b.truncate(std::mem::offset_of!(NlMsgEvent, data) + n);
        out.push(b);
    }
    out.push(bytes_of(&NlAckEvent {
        hdr: header(kind::NL_ACK),
        error: -3,
        seq: 1775803966,
        msg_type: 25,
        _pad0: 0,
        portid: 4242,
    }));
    for (family, dst, gw) in [
        (af::INET, &[192u8, 168, 1, 0][..], &[][..]),
        (af::INET, &[0, 0, 0, 0][..], &[100, 100, 100, 100][..]),
        (
            af::INET6,
            &[0xfd, 0, 0, 1][..],
            &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
        ),
    ] {
        let mut r = RouteEvent {
            hdr: header(kind::ROUTE),
            op: op::DEL,
            family,
            dst_len: 24,
            rtype: 9,
            protocol: 4,
            scope: 0,
            gw_family: if gw.is_empty() {
                0
            } else if gw.len() == 4 {
                af::INET
            } else {
                af::INET6
            },
            has_nlh: 1,
            table: 52,
            priority: 1024,
            oif: 3,
            ret: 0,
            nl_seq: 7,
            ..RouteEvent::default()
        };
        r.hdr.source = source::KPROBE;
        r.dst[..dst.len()].copy_from_slice(dst);
        r.gw[..gw.len()].copy_from_slice(gw);
        out.push(bytes_of(&r));
    }
    out.push(bytes_of(&FlushEvent {
        hdr: header(kind::FLUSH),
        table: 254,
        removed: 3,
        flush_all: 0,
        _pad0: [0; 7],
    }));
    let mut exec = ExecEvent {
        hdr: header(kind::EXEC),
        filename_len: 12,
        _pad0: 0,
        filename: [0; PATH_MAX_COPY],
    };
    exec.filename[..12].copy_from_slice(b"/usr/sbin/ip");
    let mut b = bytes_of(&exec);
    b.truncate(std::mem::offset_of!(ExecEvent, filename) + 12);
    out.push(b);
    for p in packets() {
        out.push(bytes_of(&packet_record(&p)));
    }
    let mut l = FibLookupEvent {
        hdr: header(kind::FIB_LOOKUP),
        table: 52,
        err: -11,
        oif: 0,
        iif: 5,
        family: af::INET,
        proto: 1,
        ..FibLookupEvent::default()
    };
    l.src[..4].copy_from_slice(&[100, 119, 140, 15]);
    l.dst[..4].copy_from_slice(&[192, 168, 1, 90]);
    l.dev[..10].copy_from_slice(b"tailscale0");
    out.push(bytes_of(&l));
    out
}

fn packet_record(bytes: &[u8]) -> PacketEvent {
    let n = bytes.len().min(PKT_SNAP);
    let mut data = [0u8; PKT_SNAP];
    data[..n].copy_from_slice(&bytes[..n]);
    PacketEvent {
        hdr: header(kind::PACKET),
        ifindex: 5,
        skb_len: bytes.len() as u32,
        mark: 0x40000,
        dir: dir::RX,
        _pad0: 0,
        protocol: 0x0800,
        cap_len: n as u32,
        _pad1: 0,
        data,
    }
}

/// Packets as the lab's peer and router send them.
fn packets() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        out.push(v);
    };
    push(&|v| {
        PacketBuilder::ipv4([100, 119, 140, 15], [192, 168, 1, 90], 64)
            .icmpv4_echo_request(7, 3)
            .write(v, &[0u8; 56])
            .unwrap()
    });
    push(&|v| {
        PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 5)
            .udp(4000, 53)
            .write(v, &[1u8; 100])
            .unwrap()
    });
    push(&|v| {
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 1)
            .tcp(443, 51000, 1, 65535)
            .write(v, b"GET /")
            .unwrap()
    });
    push(&|v| {
        PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
            .icmpv6_echo_reply(9, 1)
            .write(v, &[2u8; 16])
            .unwrap()
    });
    out
}

/// A scratch namespace with a bit of everything, dumped as the kernel
/// sends it: each message whole.
fn kernel_dumps() -> Vec<Vec<u8>> {
    if !root_or_skip() {
        return Vec::new();
    }
    let ns = Netns::new("seeds");
    for cmd in [
        "link set lo up",
        "link add d0 type veth peer name p0",
        "link set d0 up",
        "link set p0 up",
        "addr add 10.9.0.1/24 dev d0",
        "addr add fd09::1/64 dev d0",
        "link add d1 type veth peer name p1",
        "link set d1 up",
        "link set p1 up",
        "addr add 10.8.0.1/24 dev d1",
        "route add throw 192.168.1.0/24 table 52",
        "route add default dev d0 table 52",
        "route add 10.1.0.0/16 via 10.9.0.2 metric 7 proto static",
        "route add blackhole 10.2.0.0/16 table 100",
        "route add 10.3.0.0/16 nexthop via 10.9.0.2 weight 1 nexthop via 10.8.0.2 weight 3",
        "-6 route add fd42::/64 via fd09::2 dev d0 metric 1024",
        "-6 route add unreachable fd43::/64",
        "nexthop add id 10 via 10.9.0.2 dev d0",
        "nexthop add id 11 via 10.8.0.2 dev d1 proto static",
        "nexthop add id 12 blackhole",
        "nexthop add id 20 group 10/11,3",
        "nexthop add id 30 group 10/11 type resilient buckets 8 idle_timer 60",
        "route add 10.4.0.0/16 nhid 20",
        "rule add pref 5270 from all lookup 52",
        "rule add pref 5210 fwmark 0x80000/0xff0000 lookup main",
        "rule add pref 5250 to 10.0.0.0/8 iif d0 unreachable",
        "rule add pref 100 not from 10.9.0.0/24 ipproto tcp dport 443 sport 1000-2000 lookup 100",
        "-6 rule add pref 200 from fd09::/64 uidrange 100-200 goto 5270",
        "rule add pref 300 lookup main suppress_prefixlength 0",
    ] {
        ns.ip(cmd);
    }
    let s = dump_socket(Some(&ns.file())).expect("dump socket");
    let mut out = Vec::new();
    let mut keep = |m: &[u8]| out.push(m.to_vec());
    use netlink_packet_route::{
        RouteNetlinkMessage, address::AddressMessage, link::LinkMessage, route::RouteMessage,
        rule::RuleMessage,
    };
    for (seq, inner) in [
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        RouteNetlinkMessage::GetRule(RuleMessage::default()),
    ]
    .into_iter()
    .enumerate()
    {
        dump_request(&s, inner, seq as u32 + 1, &mut keep).expect("dump");
    }
    dump_raw_request(&s, &nexthop_msg::dump_request(9), 9, &mut keep).expect("nexthop dump");
    out
}

#[test]
#[ignore = "writes the fuzz seeds to target/fuzz-seeds/ (README, \"Fuzzing\")"]
fn write_fuzz_seeds() {
    let seeds = Seeds(out_dir());
    let _ = std::fs::remove_dir_all(&seeds.0);
    let dgrams = form_dgrams();
    let dumped = kernel_dumps();
    for (i, d) in dgrams.iter().chain(&dumped).enumerate() {
        seeds.put("netlink", &format!("msg-{i:03}"), d);
        let t = u16::from_ne_bytes([d[4], d[5]]);
        if d.len() > 16 && (t == 24 || t == 25) {
            seeds.put("route_msg", &format!("msg-{i:03}"), &d[16..]);
        }
        if d.len() > 16 && (t == 104 || t == 105) {
            seeds.put("nexthop_msg", &format!("msg-{i:03}"), &d[16..]);
        }
    }
    // A dump is many messages in one buffer, as a notification datagram may be.
    seeds.put("netlink", "dump-all", &dumped.concat());
    for (i, r) in records(&dgrams).iter().enumerate() {
        seeds.put("ring_record", &format!("record-{i:03}"), r);
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in JOURNALS {
        // A journal directory's files, or a file of JSON lines.
        let path = fixtures.join(name);
        let files = match std::fs::read_dir(&path) {
            Ok(rd) => rd.map(|e| e.expect("fixture entry").path()).collect(),
            Err(_) => vec![path],
        };
        for (i, f) in files.iter().enumerate() {
            let bytes = std::fs::read(f).expect("fixture");
            seeds.put("journal", &format!("{name}-{i}"), &bytes);
        }
    }
    for (i, e) in EXPECTATIONS.iter().enumerate() {
        seeds.put("expect", &format!("expect-{i:02}"), e.as_bytes());
    }
    for (i, t) in TIMES.iter().enumerate() {
        // The first byte is the time zone: 128 + 36 quarter hours is +09:00.
        let mut b = vec![128 + 36];
        b.extend_from_slice(t.as_bytes());
        seeds.put("time", &format!("time-{i:02}"), &b);
    }
    for (i, s) in IFACES.iter().enumerate() {
        seeds.put("iface", &format!("iface-{i}"), s.as_bytes());
    }
    for (i, p) in packets().iter().enumerate() {
        seeds.put("pcap", &format!("packet-{i}"), p);
    }
    eprintln!("seeds written to {}", seeds.0.display());
}
