//! The nexthop objects of a namespace's mirror (`ip nexthop`), and the
//! routes that use them by id (`nhid`): what a route forwards to is read
//! from its object, and the routes that go with a deleted or replaced
//! object are found here.
use super::mirror::{Compact, NsMirror, route_of};
use crate::{
    event::{NextHop, Nexthop, Op, Route},
    netlink::decode::{NlItem, NlObj},
};

impl NsMirror {
    /// The nexthop object `id`, if the namespace has it.
    pub fn nexthop(&self, id: u32) -> Option<&Nexthop> {
        self.nexthops.get(&id)
    }

    pub(super) fn apply_nexthop(&mut self, op: Op, nh: &Nexthop) {
        match op {
            Op::Add => {
                let mut nh = nh.clone();
                nh.name_dev(|i| self.dev(i));
                self.nexthops.insert(nh.id, nh);
            }
            Op::Del => {
                self.nexthops.remove(&nh.id);
            }
        }
    }

    /// Take a dump's nexthops as the namespace's; the ones that vanished
    /// since (the kernel removes a device's nexthops without a
    /// notification when it goes down or away).
    pub fn load_nexthops(&mut self, items: &[NlItem]) -> Vec<Nexthop> {
        let mut fresh = std::collections::HashMap::new();
        for i in items {
            if let NlObj::Nexthop { nexthop, .. } = &i.obj {
                let mut nh = (**nexthop).clone();
                nh.name_dev(|i| self.dev(i));
                fresh.insert(nh.id, nh);
            }
        }
        let old = std::mem::replace(&mut self.nexthops, fresh);
        let mut gone: Vec<Nexthop> = old
            .into_values()
            .filter(|n| !self.nexthops.contains_key(&n.id))
            .collect();
        gone.sort_by_key(|n| n.id);
        gone
    }

    /// The groups that hold `id` as a member, by id.
    pub fn groups_with(&self, id: u32) -> Vec<u32> {
        let mut g: Vec<u32> = self
            .nexthops
            .values()
            .filter(|n| n.group.iter().any(|m| m.id == id))
            .map(|n| n.id)
            .collect();
        g.sort_unstable();
        g
    }

    /// The routes that use the nexthop object `id`, with what they forward
    /// to resolved from the objects as they are now.
    pub fn routes_using(&self, id: u32) -> Vec<Route> {
        let mut out: Vec<Route> = self
            .v4
            .iter()
            .filter(|e| e.nhid == id)
            .map(|e| route_of(e, 2))
            .chain(
                self.v6
                    .iter()
                    .filter(|e| e.nhid == id)
                    .map(|e| route_of(e, 10)),
            )
            .collect();
        for r in &mut out {
            self.resolve(r);
            r.name_devs(|i| self.dev(i));
        }
        out
    }

    /// Every route, resolved and with devices named, IPv4 first.
    pub fn routes(&self) -> Vec<Route> {
        let mut out: Vec<Route> = self
            .v4
            .iter()
            .map(|e| route_of(e, 2))
            .chain(self.v6.iter().map(|e| route_of(e, 10)))
            .collect();
        for r in &mut out {
            self.resolve(r);
            r.name_devs(|i| self.dev(i));
        }
        out
    }

    /// Forget a route (removed without a notification).
    pub fn remove_route(&mut self, r: &Route) {
        match Compact::of_route(r) {
            Some(Compact::V4(e)) => {
                self.v4.remove(&e.key());
            }
            Some(Compact::V6(e)) => {
                self.v6.remove(&e.key());
            }
            None => {}
        }
    }

    /// What a route that names a nexthop object (`nhid`) forwards to, from
    /// the object as the mirror has it now: its gateway and device, or a
    /// group's members as next hops. The object is the truth: what the
    /// route's own message said (the kernel repeats the object's gateway
    /// in it) may be older.
    pub fn resolve(&self, r: &mut Route) {
        let Some(nh) = r.nhid.and_then(|id| self.nexthops.get(&id)) else {
            return;
        };
        if nh.is_group() {
            r.gateway = None;
            r.ifindex = None;
            r.dev = None;
            r.nexthops = nh
                .group
                .iter()
                .map(|m| {
                    let member = self.nexthops.get(&m.id);
                    NextHop {
                        gateway: member.and_then(|n| n.gateway.clone()),
                        dev: member.and_then(|n| n.dev.clone()),
                        ifindex: member.and_then(|n| n.ifindex),
                        weight: u16::try_from(m.weight).unwrap_or(u16::MAX),
                        flags: member.map(|n| n.flags.clone()).unwrap_or_default(),
                    }
                })
                .collect();
        } else {
            r.nexthops.clear();
            r.gateway = nh.gateway.clone();
            r.ifindex = nh.ifindex;
            r.dev = nh.dev.clone();
        }
    }
}
