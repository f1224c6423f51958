//! When two events are about the same rule or route, and who made a change.
//!
//! A rule is the same rule when its family, priority, table, action and
//! selectors are (its `protocol` is not part of it: a rule put back by
//! another program is still the rule that was removed). A route is the
//! same route as [`RouteId`] says (shared with the metrics). A nexthop
//! object is the same object when its id is (a replacement keeps it). The
//! namespace is part of each.
use serde::Serialize;

use crate::event::RouteId;
use crate::event::{Change, Family, Netns, Nexthop, Process, Route, Rule};

/// A rule, a route or a nexthop object, as events carry them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    Rule(Rule),
    Route(Route),
    Nexthop(Nexthop),
}

impl Object {
    pub fn of(c: &Change) -> Option<Object> {
        match (&c.rule, &c.route, &c.nexthop) {
            (Some(r), _, _) => Some(Object::Rule(r.clone())),
            (_, Some(r), _) => Some(Object::Route(r.clone())),
            (_, _, Some(n)) => Some(Object::Nexthop(n.clone())),
            _ => None,
        }
    }
}

/// Which namespace: by inode when known (names can be reused), else by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsKey {
    Inode(u32),
    Name(String),
    Unknown,
}

impl NsKey {
    pub fn of(n: &Netns) -> NsKey {
        match (n.inode, &n.name) {
            (Some(i), _) => NsKey::Inode(i),
            (None, Some(name)) => NsKey::Name(name.clone()),
            _ => NsKey::Unknown,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    family: Option<Family>,
    priority: Option<u32>,
    table: Option<u32>,
    action: Option<String>,
    goto: Option<u32>,
    src: Option<String>,
    dst: Option<String>,
    fwmark: Option<u32>,
    fwmask: Option<u32>,
    iif: Option<String>,
    oif: Option<String>,
    uid_range: Option<String>,
    ipproto: Option<u8>,
    sport: Option<String>,
    dport: Option<String>,
    tos: Option<u8>,
    suppress_prefixlen: Option<u32>,
    invert: bool,
}

/// The identity of a rule or route in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Rule(NsKey, Box<RuleId>),
    Route(NsKey, RouteId),
    /// A nexthop object, by its id.
    Nexthop(NsKey, u32),
}

impl Key {
    pub fn new(netns: &Netns, o: &Object) -> Key {
        let ns = NsKey::of(netns);
        match o {
            Object::Rule(r) => Key::Rule(
                ns,
                Box::new(RuleId {
                    family: r.family,
                    priority: r.priority,
                    table: r.table,
                    action: r.action.clone(),
                    goto: r.goto,
                    src: r.src.clone(),
                    dst: r.dst.clone(),
                    fwmark: r.fwmark,
                    fwmask: r.fwmask,
                    iif: r.iif.clone(),
                    oif: r.oif.clone(),
                    uid_range: r.uid_range.clone(),
                    ipproto: r.ipproto,
                    sport: r.sport.clone(),
                    dport: r.dport.clone(),
                    tos: r.tos,
                    suppress_prefixlen: r.suppress_prefixlen,
                    invert: r.invert,
                }),
            ),
            Object::Route(r) => Key::Route(ns, RouteId::of(r)),
            Object::Nexthop(n) => Key::Nexthop(ns, n.id),
        }
    }
}

/// Who made a change, as a report names it: a systemd unit (all its
/// processes), else a process, else the kernel (no process attributed).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Actor {
    pub unit: Option<String>,
    pub comm: Option<String>,
    /// Every process id seen, in order.
    pub pids: Vec<u32>,
    pub exe: Option<String>,
    /// The tracer's own guard, putting back what was removed (`tracer
    /// guard --repair`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
}

/// What groups changes into one episode: the unit when known, else the
/// process, else the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorKey {
    Unit(String),
    Pid(u32),
    Kernel,
}

impl Actor {
    pub fn of(p: Option<&Process>) -> Actor {
        match p {
            None => Actor::default(),
            Some(p) => Actor {
                unit: p.unit.clone(),
                comm: Some(p.comm.clone()),
                pids: vec![p.pid],
                exe: p.exe.clone(),
                guard: p.guard,
            },
        }
    }

    pub fn key(p: Option<&Process>) -> ActorKey {
        match p {
            None => ActorKey::Kernel,
            Some(Process { unit: Some(u), .. }) => ActorKey::Unit(u.clone()),
            Some(p) => ActorKey::Pid(p.pid),
        }
    }

    /// Adds a process of the same unit.
    pub fn merge(&mut self, p: Option<&Process>) {
        if let Some(p) = p
            && !self.pids.contains(&p.pid)
        {
            self.pids.push(p.pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: Option<&str>, metric: Option<u32>, rtype: Option<&str>, proto: &str) -> Object {
        Object::Route(Route {
            family: Some(Family::Inet),
            table: Some(52),
            rtype: rtype.map(|t| t.to_string().into()),
            dst: dst.map(String::from),
            metric,
            protocol: Some(proto.to_string().into()),
            ..Route::default()
        })
    }

    #[test]
    fn identity_ignores_what_does_not_name_the_object() {
        let ns = Netns {
            inode: Some(7),
            name: Some("router".into()),
        };
        let key = |o: &Object| Key::new(&ns, o);
        // Defaults spelled out or left null, another protocol, another next hop.
        assert_eq!(
            key(&route(None, None, None, "boot")),
            key(&route(
                Some("0.0.0.0/0"),
                Some(0),
                Some("unicast"),
                "static"
            ))
        );
        let mut via = route(Some("10.0.0.0/8"), None, None, "boot");
        if let Object::Route(r) = &mut via {
            r.gateway = Some("192.168.1.1".into());
        }
        assert_eq!(
            key(&via),
            key(&route(Some("10.0.0.0/8"), None, None, "dhcp"))
        );
        // What does name it.
        assert_ne!(
            key(&route(Some("10.0.0.0/8"), None, Some("throw"), "boot")),
            key(&route(Some("10.0.0.0/8"), None, None, "boot"))
        );
        assert_ne!(
            key(&route(Some("10.0.0.0/8"), Some(100), None, "boot")),
            key(&route(Some("10.0.0.0/8"), None, None, "boot"))
        );
        // The namespace: by inode, whatever its name says.
        let renamed = Netns {
            inode: Some(7),
            name: None,
        };
        let o = route(None, None, None, "boot");
        assert_eq!(Key::new(&renamed, &o), key(&o));
        let other = Netns {
            inode: Some(8),
            name: Some("router".into()),
        };
        assert_ne!(Key::new(&other, &o), key(&o));

        let rule = |proto: &str, fwmark: Option<u32>| {
            Object::Rule(Rule {
                family: Some(Family::Inet),
                priority: Some(5210),
                table: Some(254),
                fwmark,
                protocol: Some(proto.into()),
                ..Rule::default()
            })
        };
        assert_eq!(key(&rule("boot", Some(1))), key(&rule("unspec", Some(1))));
        assert_ne!(key(&rule("boot", Some(1))), key(&rule("boot", None)));
    }

    fn on(
        family: Family,
        dst: &str,
        dev: Option<&str>,
        ifindex: Option<u32>,
        proto: &str,
    ) -> Object {
        Object::Route(Route {
            family: Some(family),
            table: Some(254),
            dst: Some(dst.into()),
            dev: dev.map(String::from),
            ifindex,
            protocol: Some(proto.to_string().into()),
            ..Route::default()
        })
    }

    #[test]
    fn the_device_is_part_of_a_route_where_the_kernel_keeps_one_per_device() {
        let ns = Netns::default();
        let key = |o: &Object| Key::new(&ns, o);
        // IPv6: fe80::/64 on d2 (index 5) is not fe80::/64 on d3 (index 7),
        // and d2's route is d2's whether or not the event could name it.
        let d2 = on(Family::Inet6, "fe80::/64", Some("d2"), Some(5), "kernel");
        let d3 = on(Family::Inet6, "fe80::/64", Some("d3"), Some(7), "kernel");
        assert_ne!(key(&d2), key(&d3));
        assert_eq!(
            key(&d2),
            key(&on(Family::Inet6, "fe80::/64", None, Some(5), "kernel"))
        );
        // A new interface reusing the name is another device.
        assert_ne!(
            key(&d2),
            key(&on(
                Family::Inet6,
                "fe80::/64",
                Some("d2"),
                Some(9),
                "kernel"
            ))
        );
        // IPv4: the kernel's own routes are per interface ...
        assert_ne!(
            key(&on(Family::Inet, "10.2.0.0/24", None, Some(5), "kernel")),
            key(&on(
                Family::Inet,
                "10.2.0.0/24",
                Some("d3"),
                Some(7),
                "kernel"
            ))
        );
        // ... but a route put back through another device still holds the
        // place of the one removed.
        assert_eq!(
            key(&on(
                Family::Inet,
                "10.9.0.0/16",
                Some("d2"),
                Some(5),
                "static"
            )),
            key(&on(
                Family::Inet,
                "10.9.0.0/16",
                Some("d3"),
                Some(7),
                "boot"
            ))
        );
    }
}
