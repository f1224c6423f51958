//! The random rule and route sets of `walk-check`, and the lookups asked
//! of them. Addresses come from small pools so that prefixes overlap,
//! rules share priorities, and marks meet their masks.
use std::net::IpAddr;

use fastrand::Rng;

/// The interfaces: four veth pairs, each end in the namespace. The `a`
/// ends hold 10.N.0.1/24 and fd00:N::1/64.
pub const DEVS: [&str; 8] = ["w0a", "w0b", "w1a", "w1b", "w2a", "w2b", "w3a", "w3b"];

const TABLES: [&str; 5] = ["100", "101", "102", "103", "main"];
const MARKS: [(u32, Option<u32>); 4] = [
    (0x1, None),
    (0x80000, Some(0xff0000)),
    (0x2, Some(0x3)),
    (0x0, Some(0xff)),
];

/// What a round generated, for the lookups to aim at.
pub struct Generated {
    prefixes: Vec<ipnet::IpNet>,
}

/// One lookup.
pub struct Case {
    pub dst: IpAddr,
    pub src: IpAddr,
    pub iif: Option<String>,
    pub mark: u32,
}

pub fn links() -> Vec<String> {
    let mut v = vec!["link set lo up".to_string()];
    for n in 0..4 {
        v.push(format!("link add w{n}a type veth peer name w{n}b"));
        v.push(format!("link set w{n}a up"));
        v.push(format!("link set w{n}b up"));
        v.push(format!("addr add 10.{n}.0.1/24 dev w{n}a"));
        v.push(format!("addr add fd00:{n}::1/64 dev w{n}a nodad"));
    }
    v
}

/// Undo a round: every rule but the local one, the generated tables, the
/// static routes of main.
pub fn flush() -> Vec<String> {
    let mut v = vec!["-4 rule flush".to_string(), "-6 rule flush".to_string()];
    for f in ["-4", "-6"] {
        for t in &TABLES[..4] {
            v.push(format!("{f} route flush table {t}"));
        }
        v.push(format!("{f} route flush table main proto static"));
    }
    v
}

fn prefix(rng: &mut Rng, v6: bool) -> String {
    let (a, b, c) = (rng.u8(0..4), rng.u8(0..4), rng.u8(1..255));
    match (v6, rng.u8(0..8)) {
        (false, 0) => "0.0.0.0/0".into(),
        (false, 1) => format!("10.{a}.0.0/16"),
        (false, 2) => "10.0.0.0/8".into(),
        (false, 3) => format!("172.16.{b}.0/24"),
        (false, 4) => format!("172.16.{b}.{c}/32"),
        (false, 5) => format!("10.{a}.{b}.0/24"),
        (false, 6) => format!("10.{a}.{b}.{c}/32"),
        (false, _) => "172.16.0.0/12".into(),
        (true, 0) => "::/0".into(),
        (true, 1) => format!("fd00:{a}::/32"),
        (true, 2) => "fd00::/16".into(),
        (true, 3) => format!("fd10:{b}::/64"),
        (true, 4) => format!("fd10:{b}::{c:x}/128"),
        (true, 5) => format!("fd00:{a}:{b}::/48"),
        (true, 6) => format!("fd00:{a}::{c:x}/128"),
        (true, _) => "fd10::/16".into(),
    }
}

fn rule(rng: &mut Rng, v6: bool, prios: &[u32]) -> String {
    let fam = if v6 { "-6" } else { "-4" };
    let prio = prios[rng.usize(0..prios.len())];
    let mut s = format!("{fam} rule add pref {prio}");
    if rng.u8(0..10) == 0 {
        s.push_str(" not");
    }
    if rng.u8(0..4) == 0 {
        s.push_str(&format!(" from {}", prefix(rng, v6)));
    }
    if rng.u8(0..4) == 0 {
        s.push_str(&format!(" to {}", prefix(rng, v6)));
    }
    if rng.u8(0..4) == 0 {
        let (m, mask) = MARKS[rng.usize(0..MARKS.len())];
        match mask {
            Some(k) => s.push_str(&format!(" fwmark {m:#x}/{k:#x}")),
            None => s.push_str(&format!(" fwmark {m:#x}")),
        }
    }
    if rng.u8(0..4) == 0 {
        let dev = if rng.bool() {
            "lo"
        } else {
            DEVS[rng.usize(0..8)]
        };
        s.push_str(&format!(" iif {dev}"));
    }
    let extra = [
        " oif w0a",
        " tos 0x10",
        " ipproto 6",
        " sport 1000-2000",
        " dport 53",
        " uidrange 0-0",
        " uidrange 1000-2000",
    ];
    if rng.u8(0..5) == 0 {
        s.push_str(extra[rng.usize(0..extra.len())]);
    }
    match rng.u8(0..20) {
        0 => s.push_str(" unreachable"),
        1 => s.push_str(" blackhole"),
        2 => s.push_str(" prohibit"),
        3 => s.push_str(" nop"),
        4 | 5 => {
            let later: Vec<&u32> = prios.iter().filter(|p| **p > prio).collect();
            match later.get(rng.usize(0..later.len().max(1))) {
                Some(p) => s.push_str(&format!(" goto {p}")),
                None => s.push_str(" lookup main"),
            }
        }
        _ => {
            s.push_str(&format!(" lookup {}", TABLES[rng.usize(0..TABLES.len())]));
            if rng.u8(0..8) == 0 {
                s.push_str(&format!(" suppress_prefixlength {}", rng.u8(0..33)));
            }
        }
    }
    s
}

fn route(rng: &mut Rng, v6: bool, table: &str) -> (String, String) {
    let fam = if v6 { "-6" } else { "-4" };
    let dst = prefix(rng, v6);
    let n = rng.u8(0..4);
    let kind = match rng.u8(0..12) {
        0 | 1 => "throw ".to_string(),
        2 => "unreachable ".into(),
        3 => "blackhole ".into(),
        4 => "prohibit ".into(),
        _ => String::new(),
    };
    let mut s = format!("{fam} route add {kind}{dst}");
    if kind.is_empty() {
        match (rng.u8(0..3), v6) {
            (0, false) => s.push_str(&format!(" via 10.{n}.0.2 dev w{n}a")),
            (0, true) => s.push_str(&format!(" via fd00:{n}::2 dev w{n}a")),
            _ => s.push_str(&format!(" dev {}", DEVS[rng.usize(0..8)])),
        }
    }
    s.push_str(&format!(" table {table} proto static"));
    if rng.bool() {
        s.push_str(&format!(" metric {}", [0, 10, 100, 1024][rng.usize(0..4)]));
    }
    (s, dst)
}

/// A round's `ip -batch` lines: rules for both families (the main and
/// default rules mostly kept), then routes in tables 100-103 and main.
pub fn ruleset(rng: &mut Rng) -> (Vec<String>, Generated) {
    let mut lines = Vec::new();
    let mut prefixes = Vec::new();
    for v6 in [false, true] {
        let fam = if v6 { "-6" } else { "-4" };
        let prios: Vec<u32> = (0..rng.usize(3..8)).map(|_| rng.u32(1..12) * 100).collect();
        for _ in 0..rng.usize(3..10) {
            lines.push(rule(rng, v6, &prios));
        }
        if rng.u8(0..10) != 0 {
            lines.push(format!("{fam} rule add pref 32766 lookup main"));
        }
        if rng.u8(0..10) != 0 {
            lines.push(format!("{fam} rule add pref 32767 lookup default"));
        }
        for t in TABLES {
            for _ in 0..rng.usize(2..8) {
                let (l, dst) = route(rng, v6, t);
                lines.push(l);
                prefixes.extend(crate::prefix::parse(&dst));
            }
        }
    }
    (lines, Generated { prefixes })
}

/// An address in `net` (not its network address, nor an IPv4 broadcast).
fn inside(rng: &mut Rng, net: ipnet::IpNet) -> IpAddr {
    match net {
        ipnet::IpNet::V4(n) => {
            let host = !u32::MAX
                .checked_shl(32 - u32::from(n.prefix_len()))
                .unwrap_or(0);
            let base = u32::from(n.network());
            let mut a = base | (rng.u32(..) & host);
            if host >= 0xff {
                // Keep off .0 and .255 (network and broadcast addresses).
                a = (a & !0xff) | u32::from(rng.u8(2..254));
            }
            IpAddr::from(a.to_be_bytes())
        }
        ipnet::IpNet::V6(n) => {
            let host = !u128::MAX
                .checked_shl(128 - u32::from(n.prefix_len()))
                .unwrap_or(0);
            let a = u128::from(n.network()) | (rng.u128(..) & host & 0xffff) | 2.min(host);
            IpAddr::from(a.to_be_bytes())
        }
    }
}

/// An address a packet may really carry: unicast, not loopback, not 0/8
/// (the kernel refuses the others as martians before any routing).
fn address(rng: &mut Rng, g: &Generated, v6: bool) -> IpAddr {
    loop {
        let a = any_address(rng, g, v6);
        let ok = match a {
            IpAddr::V4(a) => (1..224).contains(&a.octets()[0]) && a.octets()[0] != 127,
            IpAddr::V6(a) => {
                a.segments()[0] & 0xff00 != 0xff00 && !a.is_loopback() && !a.is_unspecified()
            }
        };
        if ok {
            return a;
        }
    }
}

fn any_address(rng: &mut Rng, g: &Generated, v6: bool) -> IpAddr {
    let n = rng.u8(0..4);
    let pool: Vec<&ipnet::IpNet> = g
        .prefixes
        .iter()
        .filter(|p| p.addr().is_ipv6() == v6)
        .collect();
    match rng.u8(0..4) {
        0 if !v6 => IpAddr::from([10, n, 0, rng.u8(1..254)]),
        0 => format!("fd00:{n}::{:x}", rng.u16(1..300))
            .parse()
            .expect("v6"),
        _ if !pool.is_empty() => {
            let p = *pool[rng.usize(0..pool.len())];
            inside(rng, p)
        }
        _ if v6 => format!("fd10:{n}::{:x}", rng.u16(1..300))
            .parse()
            .expect("v6"),
        _ => IpAddr::from([172, 16, n, rng.u8(1..254)]),
    }
}

pub fn case(rng: &mut Rng, g: &Generated) -> Case {
    let v6 = rng.bool();
    let dst = address(rng, g, v6);
    let iif = (rng.u8(0..4) != 0).then(|| DEVS[rng.usize(0..8)].to_string());
    let src = match &iif {
        Some(_) => loop {
            let s = address(rng, g, v6);
            // Not one of the namespace's own addresses (10.N.0.1, fd00:N::1).
            let own = match s {
                IpAddr::V4(a) => a.octets()[0] == 10 && a.octets()[2] == 0 && a.octets()[3] == 1,
                IpAddr::V6(a) => {
                    a.segments()[0] == 0xfd00
                        && a.segments()[2..7] == [0; 5]
                        && a.segments()[7] == 1
                }
            };
            if !own {
                break s;
            }
        },
        None if v6 => IpAddr::from([0u16; 8]),
        None => IpAddr::from([0u8; 4]),
    };
    let mark = match rng.u8(0..3) {
        0 => 0,
        1 => MARKS[rng.usize(0..MARKS.len())].0,
        _ => rng.u32(0..4) | (rng.u32(0..2) << 19),
    };
    Case {
        dst,
        src,
        iif,
        mark,
    }
}
