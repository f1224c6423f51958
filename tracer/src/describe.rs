//! Rules, routes, processes and namespaces described as `ip rule`,
//! `ip route` and `ps` would: the pieces every text line is made of. A
//! leaf: the outputs, `report`, `explain`, the guard and the packet path's
//! advice all describe objects the same way.
use std::fmt::Write as _;

use crate::{
    escape::{escape_escaped, escape_str},
    event::{Change, Family, Netns, Nexthop, Route, Rule},
};

/// `ip route`-style description of a route.
pub fn route(r: &Route) -> String {
    let mut s = String::new();
    if let Some(f) = r.family {
        let _ = write!(s, "{} ", f.as_str());
    }
    match r.rtype.as_deref() {
        Some("unicast") | None => {}
        Some(t) => {
            let _ = write!(s, "{t} ");
        }
    }
    s.push_str(r.dst.as_deref().unwrap_or("?"));
    via_dev(&mut s, r.gateway.as_deref(), r.dev.as_deref(), r.ifindex);
    if let Some(id) = r.nhid {
        let _ = write!(s, " nhid {id}");
    }
    // As `ip route`: an IPv4 route's metric 0 goes unsaid (the kernel
    // leaves it out of its messages).
    if let Some(m) = r
        .metric
        .filter(|&m| m != 0 || r.family != Some(Family::Inet))
    {
        let _ = write!(s, " metric {m}");
    }
    table(&mut s, r.table, r.table_name.as_deref());
    for h in &r.nexthops {
        s.push_str(" nexthop");
        via_dev(&mut s, h.gateway.as_deref(), h.dev.as_deref(), h.ifindex);
        let _ = write!(s, " weight {}", h.weight);
        for f in &h.flags {
            let _ = write!(s, " {f}");
        }
    }
    if let Some(p) = &r.protocol {
        let _ = write!(s, " proto {p}");
    }
    s
}

/// " via GW dev DEV" (" dev #INDEX" when the device has no name), as
/// `ip` writes a next hop; the device escaped.
pub fn via_dev(s: &mut String, gateway: Option<&str>, dev: Option<&str>, ifindex: Option<u32>) {
    if let Some(gw) = gateway {
        let _ = write!(s, " via {gw}");
    }
    match (dev, ifindex) {
        (Some(d), _) => {
            let _ = write!(s, " dev {}", escape_str(d));
        }
        (None, Some(i)) => {
            let _ = write!(s, " dev #{i}");
        }
        _ => {}
    }
}

fn table(s: &mut String, id: Option<u32>, name: Option<&str>) {
    match (id, name) {
        (Some(id), Some(n)) => {
            let _ = write!(s, " table {id}({})", escape_str(n));
        }
        (Some(id), None) => {
            let _ = write!(s, " table {id}");
        }
        _ => {}
    }
}

/// `ip rule`-style description of a rule.
pub fn rule(r: &Rule) -> String {
    let mut s = String::new();
    if let Some(f) = r.family {
        let _ = write!(s, "{} ", f.as_str());
    }
    match r.priority {
        Some(p) => {
            let _ = write!(s, "pref {p}");
        }
        None => s.push_str("pref ?"),
    }
    if r.invert {
        s.push_str(" not");
    }
    for (k, v) in [("from", &r.src), ("to", &r.dst)] {
        if let Some(v) = v {
            let _ = write!(s, " {k} {v}");
        }
    }
    if let Some(m) = r.fwmark {
        let _ = write!(s, " fwmark {m:#x}");
        if let Some(mask) = r.fwmask {
            let _ = write!(s, "/{mask:#x}");
        }
    }
    rule_selectors(&mut s, r);
    match r.action.as_deref() {
        Some("table") | None => match (r.table, &r.table_name) {
            (Some(t), Some(n)) => {
                let _ = write!(s, " lookup {t}({})", escape_str(n));
            }
            (Some(t), None) => {
                let _ = write!(s, " lookup {t}");
            }
            _ => {}
        },
        Some("goto") => {
            let _ = write!(
                s,
                " goto {}",
                r.goto.map(|g| g.to_string()).unwrap_or_else(|| "?".into())
            );
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

pub fn who(c: &Change) -> String {
    let Some(p) = &c.process else {
        return "by unknown".to_string();
    };
    // comm and parent_comm were escaped when made from the kernel's bytes.
    let mut s = format!("by {}[{}]", escape_escaped(&p.comm), p.pid);
    if p.tid != p.pid {
        let _ = write!(s, " tid {}", p.tid);
    }
    if let (Some(pc), Some(pp)) = (&p.parent_comm, p.ppid) {
        let _ = write!(s, " parent {}[{pp}]", escape_escaped(pc));
    }
    let _ = write!(s, " uid {}", p.uid);
    if let Some(u) = &p.unit {
        let _ = write!(s, " unit {}", escape_str(u));
    }
    if let Some(e) = &p.exe {
        let _ = write!(s, " exe {}", escape_str(e));
    }
    if p.guard {
        s.push_str(" (the guard's repair)");
    }
    s
}

/// `ip nexthop`-style description of a nexthop object: "id 10 via
/// 10.9.0.2 dev v0", "id 20 group 10/12,3" (a member's weight after a
/// comma when it is not 1), "id 3 blackhole".
pub fn nexthop(n: &Nexthop) -> String {
    let mut s = format!("id {}", n.id);
    if n.is_group() {
        let members: Vec<String> = n
            .group
            .iter()
            .map(|m| match m.weight {
                1 => m.id.to_string(),
                w => format!("{},{w}", m.id),
            })
            .collect();
        let _ = write!(s, " group {}", members.join("/"));
        if let Some(t) = n.group_type.as_deref().filter(|t| *t != "mpath") {
            let _ = write!(s, " type {}", escape_str(t));
        }
    }
    via_dev(&mut s, n.gateway.as_deref(), n.dev.as_deref(), n.ifindex);
    if n.blackhole {
        s.push_str(" blackhole");
    }
    if n.fdb {
        s.push_str(" fdb");
    }
    s
}

/// A namespace by name, else inode.
pub fn netns_label(n: &Netns) -> String {
    match (&n.name, n.inode) {
        (Some(n), _) => escape_str(n),
        (None, Some(i)) => i.to_string(),
        _ => "?".into(),
    }
}

/// `ip route`-style, short: "default dev tailscale0", "throw 192.168.1.0/24".
pub fn route_short(r: &Route) -> String {
    let dst = match (r.dst.as_deref(), r.family) {
        (Some(d), Some(f)) if d == f.any() => "default".to_string(),
        (Some(d), _) => d.to_string(),
        (None, _) => "default".to_string(),
    };
    let mut s = match r.rtype.as_deref() {
        Some("unicast") | None => dst,
        Some(t) => format!("{t} {dst}"),
    };
    if let Some(gw) = &r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    match (&r.dev, r.ifindex) {
        (Some(d), _) => s.push_str(&format!(" dev {d}")),
        (None, Some(i)) => s.push_str(&format!(" dev #{i}")),
        _ => {}
    }
    if let Some(id) = r.nhid {
        s.push_str(&format!(" nhid {id}"));
    }
    for h in &r.nexthops {
        s.push_str(" nexthop");
        if let Some(gw) = &h.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        match (&h.dev, h.ifindex) {
            (Some(d), _) => s.push_str(&format!(" dev {d}")),
            (None, Some(i)) => s.push_str(&format!(" dev #{i}")),
            _ => {}
        }
        s.push_str(&format!(" weight {}", h.weight));
    }
    s
}

/// A rule's selectors after its addresses and mark, as `ip rule` writes
/// them: iif/oif, uidrange, ipproto, sport/dport.
pub fn rule_selectors(s: &mut String, r: &Rule) {
    for (k, v) in [("iif", &r.iif), ("oif", &r.oif)] {
        if let Some(v) = v {
            let _ = write!(s, " {k} {}", escape_str(v));
        }
    }
    if let Some(u) = &r.uid_range {
        let _ = write!(s, " uidrange {u}");
    }
    if let Some(p) = r.ipproto {
        let _ = write!(s, " ipproto {p}");
    }
    for (k, v) in [("sport", &r.sport), ("dport", &r.dport)] {
        if let Some(v) = v {
            let _ = write!(s, " {k} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Family;

    #[test]
    fn route_short_is_ip_route_style() {
        let r = Route {
            family: Some(Family::Inet),
            dst: Some("0.0.0.0/0".into()),
            rtype: Some("unicast".into()),
            dev: Some("tailscale0".into()),
            ..Route::default()
        };
        assert_eq!(route_short(&r), "default dev tailscale0");
        let t = Route {
            family: Some(Family::Inet),
            dst: Some("192.168.1.0/24".into()),
            rtype: Some("throw".into()),
            ..Route::default()
        };
        assert_eq!(route_short(&t), "throw 192.168.1.0/24");
    }

    #[test]
    fn nexthops_are_ip_nexthop_style() {
        use crate::event::GroupMember;
        let single = Nexthop {
            id: 10,
            gateway: Some("10.9.0.2".into()),
            dev: Some("v0".into()),
            ifindex: Some(2),
            ..Nexthop::default()
        };
        assert_eq!(nexthop(&single), "id 10 via 10.9.0.2 dev v0");
        let group = Nexthop {
            id: 20,
            group: vec![
                GroupMember { id: 10, weight: 1 },
                GroupMember { id: 12, weight: 3 },
            ],
            group_type: Some("mpath".into()),
            ..Nexthop::default()
        };
        assert_eq!(nexthop(&group), "id 20 group 10/12,3");
        let gone = Nexthop {
            id: 7,
            ifindex: Some(5),
            ..Nexthop::default()
        };
        assert_eq!(nexthop(&gone), "id 7 dev #5");
        let hole = Nexthop {
            id: 3,
            blackhole: true,
            ..Nexthop::default()
        };
        assert_eq!(nexthop(&hole), "id 3 blackhole");
    }
}
