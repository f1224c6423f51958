//! Rules and routes as `ip rule show` and `ip route show table all` print
//! them (iproute2's word order; `proto boot` and `scope global` left out as
//! iproute2 leaves them out).
use std::fmt::Write as _;

use crate::{
    escape::escape_str,
    event::{Family, Route, Rule},
    netlink::names::TableNames,
};

fn table(id: u32, names: &TableNames) -> String {
    match id {
        255 => "local".into(),
        254 => "main".into(),
        253 => "default".into(),
        _ => names
            .name(id)
            .filter(|n| *n != id.to_string())
            .unwrap_or_else(|| id.to_string()),
    }
}

/// A prefix as iproute2 prints it: "default", a bare host address, or
/// "addr/len".
fn prefix(p: Option<&str>, family: Option<Family>) -> String {
    match p {
        None => "default".into(),
        Some(p) if family.is_some_and(|f| f.any() == p) => "default".into(),
        Some(p) => match p.split_once('/') {
            Some((a, l)) if (l == "32" && !a.contains(':')) || l == "128" => a.to_string(),
            _ => p.to_string(),
        },
    }
}

/// `5270:<TAB>from all fwmark 0x80000/0xff0000 lookup main`.
pub fn rule(r: &Rule, names: &TableNames) -> String {
    let mut s = format!("{}:\t", r.priority.unwrap_or(0));
    if r.invert {
        s.push_str("not ");
    }
    let _ = write!(
        s,
        "from {}",
        r.src
            .as_deref()
            .map_or("all".into(), |p| prefix(Some(p), r.family))
    );
    if let Some(d) = &r.dst {
        let _ = write!(s, " to {}", prefix(Some(d), r.family));
    }
    if let Some(t) = r.tos {
        let _ = write!(s, " tos {t:#x}");
    }
    if let Some(m) = r.fwmark {
        let _ = write!(s, " fwmark {m:#x}");
        if let Some(mask) = r.fwmask.filter(|m| *m != u32::MAX) {
            let _ = write!(s, "/{mask:#x}");
        }
    }
    crate::describe::rule_selectors(&mut s, r);
    match r.action.as_deref() {
        Some("table") | None => {
            let _ = write!(s, " lookup {}", table(r.table.unwrap_or(0), names));
        }
        Some("goto") => {
            let _ = write!(s, " goto {}", r.goto.unwrap_or(0));
        }
        Some(a) => {
            let _ = write!(s, " {a}");
        }
    }
    if let Some(p) = r.suppress_prefixlen {
        let _ = write!(s, " suppress_prefixlength {p}");
    }
    s
}

/// `throw 192.168.1.0/24 table 52` / `default dev tailscale0 table 52 scope link`.
pub fn route(r: &Route, names: &TableNames) -> String {
    let mut s = String::new();
    if let Some(t) = r.rtype.as_deref().filter(|t| *t != "unicast") {
        let _ = write!(s, "{t} ");
    }
    s.push_str(&prefix(r.dst.as_deref(), r.family));
    if let Some(id) = r.nhid {
        let _ = write!(s, " nhid {id}");
    }
    crate::describe::via_dev(&mut s, r.gateway.as_deref(), r.dev.as_deref(), r.ifindex);
    if let Some(t) = r.table.filter(|t| *t != 254) {
        let _ = write!(s, " table {}", table(t, names));
    }
    if let Some(p) = r.protocol.as_deref().filter(|p| *p != "boot") {
        let _ = write!(s, " proto {p}");
    }
    if let Some(sc) = r
        .scope
        .as_deref()
        .filter(|s| *s != "global" && *s != "universe")
    {
        let _ = write!(s, " scope {sc}");
    }
    if let Some(m) = r
        .metric
        .filter(|m| *m != 0 || r.family == Some(Family::Inet6))
    {
        let _ = write!(s, " metric {m}");
    }
    for h in &r.nexthops {
        s.push_str("\n\tnexthop");
        if let Some(gw) = &h.gateway {
            let _ = write!(s, " via {gw}");
        }
        if let Some(d) = &h.dev {
            let _ = write!(s, " dev {}", escape_str(d));
        }
        let _ = write!(s, " weight {}", h.weight);
    }
    s
}
