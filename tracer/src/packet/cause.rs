//! The routing decision behind a loop: which rules select its packet and
//! which rule sent it to the table that matched (see `suspect` for the
//! change that caused it).
use std::net::IpAddr;

use crate::{
    event::{Family, Rule},
    prefix::covers,
};

/// The packet as the rules see it.
pub struct Selector<'a> {
    pub family: Family,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub iif: &'a str,
    pub mark: u32,
    pub proto: u8,
}

fn rule_selects(r: &Rule, p: &Selector) -> bool {
    rule_mismatch(r, p).is_none()
}

/// Why a rule does not select the packet (the first selector that fails),
/// or None when it does. Selectors a route query cannot tell (oif, ports,
/// uid range) count as not selecting.
pub fn rule_mismatch(r: &Rule, p: &Selector) -> Option<String> {
    match rule_selects_with(r, p, None) {
        Selects::Yes => None,
        Selects::No(w) | Selects::Unknown(w) => Some(w),
    }
}

/// What a question says about a packet beyond [`Selector`]: the selectors
/// a live route query cannot carry. `None` means not known.
#[derive(Clone, Debug, Default)]
pub struct Extra<'a> {
    /// The output interface (a packet this host sends through a bound
    /// socket); none for a forwarded packet, whose oif is 0 to the rules.
    pub oif: Option<&'a str>,
    pub tos: u8,
    /// Whether `Selector::proto` is known (0 is then "no protocol").
    pub proto_known: bool,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// The sending process's uid (0 for a forwarded packet, as the kernel
    /// matches it).
    pub uid: Option<u32>,
}

/// Whether a rule selects a packet: yes, no (why), or not known (why: a
/// selector the question does not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selects {
    Yes,
    No(String),
    Unknown(String),
}

/// Whether `r` selects the packet, as the kernel's fib_rule_match and the
/// family's match decide, `not` rules included. Without `x`, the selectors
/// only it can tell (oif, ports, uid range) do not select.
pub fn rule_selects_with(r: &Rule, p: &Selector, x: Option<&Extra>) -> Selects {
    if r.family.is_some_and(|f| f != p.family) {
        return Selects::No("other address family".into());
    }
    let s = first_failure(r, p).map_or_else(|| extra_failure(r, p, x), Selects::No);
    match (s, r.invert) {
        (s, false) => s,
        (Selects::Yes, true) => Selects::No("`not` rule: its selectors match".into()),
        (Selects::No(_), true) => Selects::Yes,
        (u @ Selects::Unknown(_), true) => u,
    }
}

/// The selectors every question carries: addresses, iif, mark, tos.
fn first_failure(r: &Rule, p: &Selector) -> Option<String> {
    if let Some(s) = r.src.as_deref().filter(|s| !covers(s, p.src)) {
        Some(format!("source {} is not in {s}", p.src))
    } else if let Some(d) = r.dst.as_deref().filter(|d| !covers(d, p.dst)) {
        Some(format!("destination {} is not in {d}", p.dst))
    } else if let Some(i) = r.iif.as_deref().filter(|i| *i != p.iif) {
        Some(format!("iif {i} is not {:?}", p.iif))
    } else if r.fwmark.is_some() || r.fwmask.is_some() {
        // As the kernel reads them: a mark without a mask means every bit,
        // a mark of 0 without one means none.
        let m = r.fwmark.unwrap_or(0);
        let mask = r.fwmask.unwrap_or(if m == 0 { 0 } else { u32::MAX });
        (p.mark & mask != m & mask)
            .then(|| format!("mark {:#x} does not match fwmark {m:#x}/{mask:#x}", p.mark))
    } else {
        None
    }
}

/// oif, tos, ipproto, ports and uid range, when the question says them.
fn extra_failure(r: &Rule, p: &Selector, x: Option<&Extra>) -> Selects {
    let Some(x) = x else {
        return if r.oif.is_some() {
            Selects::No("selects by oif".into())
        } else if let Some(v) = r.ipproto.filter(|v| *v != p.proto) {
            Selects::No(format!("ipproto {v} is not {}", p.proto))
        } else if r.sport.is_some() || r.dport.is_some() {
            Selects::No("selects by port".into())
        } else if r.uid_range.is_some() {
            Selects::No("selects by uid".into())
        } else {
            Selects::Yes
        };
    };
    if let Some(o) = r.oif.as_deref().filter(|o| Some(*o) != x.oif) {
        return Selects::No(format!("oif {o} is not {:?}", x.oif.unwrap_or("")));
    }
    if let Some(t) = r.tos.filter(|t| t & 0xfc != x.tos & 0xfc) {
        return Selects::No(format!("tos {:#x} is not {t:#x}", x.tos));
    }
    if let Some(v) = r.ipproto {
        if !x.proto_known {
            return Selects::Unknown(format!("selects ipproto {v}: give --ipproto"));
        }
        if v != p.proto {
            return Selects::No(format!("ipproto {v} is not {}", p.proto));
        }
    }
    for (name, range, port) in [("sport", &r.sport, x.sport), ("dport", &r.dport, x.dport)] {
        let Some(range) = range.as_deref() else {
            continue;
        };
        match (port, in_range(range, port.unwrap_or(0))) {
            (None, _) => return Selects::Unknown(format!("selects {name} {range}: give --{name}")),
            (Some(_), Some(true)) => {}
            (Some(v), Some(false)) => return Selects::No(format!("{name} {v} is not in {range}")),
            (Some(_), None) => return Selects::Unknown(format!("{name} {range} not understood")),
        }
    }
    if let Some(range) = r.uid_range.as_deref() {
        match (x.uid, x.uid.and_then(|u| in_range(range, u))) {
            (None, _) => return Selects::Unknown(format!("selects uidrange {range}: give --uid")),
            (Some(_), Some(true)) => {}
            (Some(u), Some(false)) => return Selects::No(format!("uid {u} is not in {range}")),
            (Some(_), None) => return Selects::Unknown(format!("uidrange {range} not understood")),
        }
    }
    Selects::Yes
}

/// Whether `v` lies in "A-B" or "A" (None when the range does not parse).
fn in_range<T: std::str::FromStr + PartialOrd + Copy>(range: &str, v: T) -> Option<bool> {
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let (a, b): (T, T) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    Some(a <= v && v <= b)
}

/// Priority of the first rule (in priority order) that selects the packet
/// and looks up `table`.
pub fn rule_priority(rules: &[Rule], p: &Selector, table: u32) -> Option<u32> {
    let mut sorted: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.family.is_none_or(|f| f == p.family))
        .collect();
    sorted.sort_by_key(|r| r.priority.unwrap_or(0));
    sorted
        .into_iter()
        .filter(|r| r.action.as_deref().is_none_or(|a| a == "table"))
        .find(|r| r.table == Some(table) && rule_selects(r, p))
        .and_then(|r| r.priority.or(Some(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover() {
        let a: IpAddr = "192.168.1.90".parse().unwrap();
        assert!(covers("192.168.1.0/24", a));
        assert!(covers("0.0.0.0/0", a));
        assert!(!covers("10.10.10.0/24", a));
        assert!(!covers("::/0", a));
        assert!(covers("fd00::/8", "fd7a::1".parse().unwrap()));
    }

    #[test]
    fn rule_priority_skips_marked_rules() {
        let rule = |prio: u32, table: u32, mark: Option<u32>| Rule {
            family: Some(Family::Inet),
            priority: Some(prio),
            table: Some(table),
            action: Some("table".into()),
            fwmark: mark,
            fwmask: mark.map(|_| 0xff0000),
            ..Rule::default()
        };
        let rules = vec![
            rule(5210, 254, Some(0x80000)),
            rule(5270, 52, None),
            rule(32766, 254, None),
        ];
        let p = Selector {
            family: Family::Inet,
            src: "100.119.140.15".parse().unwrap(),
            dst: "192.168.1.90".parse().unwrap(),
            iif: "tailscale0",
            mark: 0,
            proto: 1,
        };
        assert_eq!(rule_priority(&rules, &p, 52), Some(5270));
        assert_eq!(rule_priority(&rules, &p, 254), Some(32766));
        let marked = Selector { mark: 0x80000, ..p };
        assert_eq!(rule_priority(&rules, &marked, 254), Some(5210));
    }
}
