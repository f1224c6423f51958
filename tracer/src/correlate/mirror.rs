//! The tracer's copy of each watched namespace's links and routes, from an
//! initial dump plus notifications. It names devices for events and, after
//! a flush the kernel does not announce (IPv4 routes removed by link down,
//! address removal), tells which routes vanished by diffing a fresh dump.
//! Routes are kept in compact form (see `route_store`) and turned back into
//! `Route`s only when one is reported.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::route_store::{Entry, HAS_GW, HAS_METRIC, HAS_OIF, Store};
use crate::{
    event::{Family, Op, Route},
    netlink::{
        decode::{LinkChange, NlItem, NlObj},
        names,
        route_msg::RouteMsg,
    },
};

/// Most names of deleted links kept (a namespace's links are few; a burst
/// of deletions beyond this forgets the older ones).
const DEPARTED_KEPT: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct Link {
    pub name: Option<String>,
    pub up: bool,
}

/// One namespace's state.
#[derive(Clone, Debug, Default)]
pub struct NsMirror {
    pub links: HashMap<u32, Link>,
    /// Names of links deleted lately, by index: the routes that go with a
    /// link are reported after the link is gone, and still name it.
    departed: HashMap<u32, String>,
    pub(super) v4: Store<4>,
    pub(super) v6: Store<16>,
    /// Nexthop objects by id (`nh_mirror`).
    pub(super) nexthops: HashMap<u32, crate::event::Nexthop>,
}

/// A mirrored route of either family.
pub(super) enum Compact {
    V4(Entry<4>),
    V6(Entry<16>),
}

/// The first `N` bytes of an address, zero-padded.
fn bytes<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut b = [0u8; N];
    let n = src.len().min(N);
    b[..n].copy_from_slice(&src[..n]);
    b
}

/// An address in 16 bytes (IPv4 in the first 4).
fn ip16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => bytes(&a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

impl Compact {
    fn of_msg(m: &RouteMsg) -> Option<Compact> {
        let dst = m.dst.unwrap_or([0; 16]);
        let gw = m.gateway.map(ip16).unwrap_or([0; 16]);
        let flags = if m.gateway.is_some() { HAS_GW } else { 0 }
            | if m.metric.is_some() { HAS_METRIC } else { 0 }
            | if m.oif.is_some() { HAS_OIF } else { 0 };
        macro_rules! entry {
            ($n:literal) => {
                Entry::<$n> {
                    table: m.table,
                    metric: m.metric.unwrap_or(0),
                    oif: m.oif.unwrap_or(0),
                    nhid: m.nhid.unwrap_or(0),
                    dst: bytes(&dst),
                    gw: bytes(&gw),
                    dst_len: m.dst_len,
                    rtype: m.rtype,
                    protocol: m.protocol,
                    scope: m.scope,
                    flags,
                }
            };
        }
        match m.family() {
            Some(Family::Inet) => Some(Compact::V4(entry!(4))),
            Some(Family::Inet6) => Some(Compact::V6(entry!(16))),
            None => None,
        }
    }

    /// The compact form of a decoded route (a notification's).
    pub(super) fn of_route(r: &Route) -> Option<Compact> {
        let family = r.family?;
        let (dst, dst_len) = match r.dst.as_deref()?.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse().ok()?),
            None => return None,
        };
        let number =
            |s: &Option<crate::event::Name>, f: fn(&str) -> Option<u8>| s.as_deref().and_then(f);
        let m = RouteMsg {
            family: match family {
                Family::Inet => 2,
                Family::Inet6 => 10,
            },
            dst_len,
            table: r.table.unwrap_or(0),
            rtype: number(&r.rtype, names::route_type_number).unwrap_or(0),
            protocol: number(&r.protocol, names::protocol_number).unwrap_or(0),
            scope: number(&r.scope, names::scope_number).unwrap_or(0),
            dst: Some(ip16(dst)),
            gateway: r.gateway.as_deref().and_then(|g| g.parse().ok()),
            oif: r.ifindex,
            metric: r.metric,
            nhid: r.nhid,
            multipath: !r.nexthops.is_empty(),
        };
        Compact::of_msg(&m)
    }
}

/// The route an entry stands for, as a dump would have described it.
pub(super) fn route_of<const N: usize>(e: &Entry<N>, family: u8) -> Route {
    let gateway = (e.flags & HAS_GW != 0).then(|| match N {
        4 => IpAddr::V4(Ipv4Addr::from(bytes::<4>(&e.gw))),
        _ => IpAddr::V6(Ipv6Addr::from(bytes::<16>(&e.gw))),
    });
    RouteMsg {
        family,
        dst_len: e.dst_len,
        table: e.table,
        rtype: e.rtype,
        protocol: e.protocol,
        scope: e.scope,
        dst: Some(bytes(&e.dst)),
        gateway,
        oif: (e.flags & HAS_OIF != 0).then_some(e.oif),
        // The mirror holds what the kernel stated: an IPv4 route without
        // RTA_PRIORITY has metric 0 (see `decode::decode_one`).
        metric: (family == 2 || e.flags & HAS_METRIC != 0).then_some(e.metric),
        nhid: (e.nhid != 0).then_some(e.nhid),
        multipath: false,
    }
    .to_route()
}

/// Whether `e`'s prefix covers `addr` (given as `N` bytes).
fn covers<const N: usize>(e: &Entry<N>, addr: &[u8; N]) -> bool {
    let len = usize::from(e.dst_len).min(N * 8);
    let (whole, bits) = (len / 8, len % 8);
    e.dst[..whole] == addr[..whole]
        && (bits == 0 || (e.dst[whole] ^ addr[whole]) & (0xffu8 << (8 - bits)) == 0)
}

/// The most specific entry of `table` covering `addr`, lowest metric first.
fn best<'a, const N: usize>(
    entries: impl Iterator<Item = &'a Entry<N>>,
    table: u32,
    addr: &[u8; N],
) -> Option<&'a Entry<N>> {
    entries
        .filter(|e| e.table == table && covers(e, addr))
        .max_by_key(|e| (e.dst_len, std::cmp::Reverse(e.metric)))
}

impl NsMirror {
    /// Apply a notification. Returns the link's previous "up" state for link
    /// messages, so callers can see a transition.
    pub fn apply(&mut self, item: &NlItem) -> Option<bool> {
        match &item.obj {
            NlObj::Route { op, route } => {
                match (Compact::of_route(route), op) {
                    (Some(Compact::V4(e)), Op::Add) => self.v4.insert(e),
                    (Some(Compact::V6(e)), Op::Add) => self.v6.insert(e),
                    (Some(Compact::V4(e)), Op::Del) => {
                        self.v4.remove(&e.key());
                    }
                    (Some(Compact::V6(e)), Op::Del) => {
                        self.v6.remove(&e.key());
                    }
                    (None, _) => {}
                }
                None
            }
            NlObj::Link(l) => self.apply_link(l),
            NlObj::Nexthop { op, nexthop } => {
                self.apply_nexthop(*op, nexthop);
                None
            }
            _ => None,
        }
    }

    /// The mirrored route that `route` (a notification's) would replace:
    /// the one with the same table, prefix and metric. Multipath next hops
    /// and nexthop ids are not mirrored, so the old route is described
    /// without them.
    pub fn replaced_by(&self, route: &Route) -> Option<Route> {
        let mut old = match Compact::of_route(route)? {
            Compact::V4(e) => self.v4.get(&e.key()).map(|o| route_of(o, 2)),
            Compact::V6(e) => self.v6.get(&e.key()).map(|o| route_of(o, 10)),
        }?;
        self.resolve(&mut old);
        old.name_devs(|i| self.dev(i));
        Some(old)
    }

    fn apply_link(&mut self, l: &LinkChange) -> Option<bool> {
        if l.deleted {
            let old = self.links.remove(&l.ifindex)?;
            if let Some(name) = old.name {
                if self.departed.len() >= DEPARTED_KEPT {
                    self.departed.clear();
                }
                self.departed.insert(l.ifindex, name);
            }
            return Some(old.up);
        }
        let entry = self.links.entry(l.ifindex).or_default();
        let was = entry.up;
        if l.name.is_some() {
            entry.name = l.name.clone();
        }
        if let Some(up) = l.up {
            entry.up = up;
        }
        Some(was)
    }

    /// Replace the link table from a dump.
    pub fn load_links(&mut self, items: &[NlItem]) {
        self.links.clear();
        for i in items {
            if let NlObj::Link(l) = &i.obj {
                self.apply_link(l);
            }
        }
    }

    /// A route of a fresh dump (between the start of a resync and
    /// `end_sync`).
    pub fn see(&mut self, m: &RouteMsg) {
        match Compact::of_msg(m) {
            Some(Compact::V4(e)) => self.v4.see(e),
            Some(Compact::V6(e)) => self.v6.see(e),
            None => {}
        }
    }

    /// End a resync: when the dump was `complete`, the routes it did not
    /// show are removed and returned (IPv4 first, each family sorted);
    /// otherwise nothing is removed. With `appeared`, the routes it showed
    /// that the mirror did not have are added there.
    pub fn end_sync(&mut self, complete: bool, appeared: Option<&mut Vec<Route>>) -> Vec<Route> {
        let (mut new4, mut new6) = (Vec::new(), Vec::new());
        let want = appeared.is_some();
        let v4 = self.v4.end_sync(complete, want.then_some(&mut new4));
        let v6 = self.v6.end_sync(complete, want.then_some(&mut new6));
        if let Some(out) = appeared {
            out.extend(new4.iter().map(|e| route_of(e, 2)));
            out.extend(new6.iter().map(|e| route_of(e, 10)));
        }
        v4.iter()
            .map(|e| route_of(e, 2))
            .chain(v6.iter().map(|e| route_of(e, 10)))
            .collect()
    }

    /// Number of routes mirrored.
    pub fn route_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The most specific route of `table` covering `addr` (device unnamed).
    pub fn longest_match(&self, table: u32, addr: IpAddr) -> Option<Route> {
        match addr {
            IpAddr::V4(a) => best(self.v4.iter(), table, &a.octets()).map(|e| route_of(e, 2)),
            IpAddr::V6(a) => best(self.v6.iter(), table, &a.octets()).map(|e| route_of(e, 10)),
        }
    }

    /// Whether link `ifindex` is known and up.
    pub fn link_up(&self, ifindex: u32) -> bool {
        self.links.get(&ifindex).is_some_and(|l| l.up)
    }

    /// What happened to link `ifindex`, as the notifications read so far
    /// tell: down (`LinkDown`), deleted lately (`LinkDel`), else None.
    pub fn link_lost(&self, ifindex: u32) -> Option<crate::event::Cause> {
        match self.links.get(&ifindex) {
            Some(l) if !l.up => Some(crate::event::Cause::LinkDown),
            Some(_) => None,
            None => self
                .departed
                .contains_key(&ifindex)
                .then_some(crate::event::Cause::LinkDel),
        }
    }

    /// The name of link `ifindex`, or of the link that had it and was
    /// deleted lately.
    pub fn dev(&self, ifindex: u32) -> Option<String> {
        match self.links.get(&ifindex) {
            Some(l) => l.name.clone(),
            None => self.departed.get(&ifindex).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(op: Op, dst: &str, table: u32) -> NlItem {
        NlItem {
            seq: 0,
            portid: 0,
            flags: 0,
            obj: NlObj::Route {
                op,
                route: Route {
                    family: Some(Family::Inet),
                    table: Some(table),
                    dst: Some(dst.into()),
                    rtype: Some("unicast".into()),
                    protocol: Some("boot".into()),
                    scope: Some("global".into()),
                    gateway: Some("10.9.9.9".into()),
                    ..Route::default()
                },
            },
        }
    }

    fn msg(dst: [u8; 4], len: u8, table: u32) -> RouteMsg {
        RouteMsg {
            family: 2,
            dst_len: len,
            table,
            rtype: 1,
            protocol: 3,
            dst: Some(bytes(&dst)),
            gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))),
            ..RouteMsg::default()
        }
    }

    #[test]
    fn diff_names_vanished_routes() {
        let mut m = NsMirror::default();
        for i in [
            item(Op::Add, "10.0.0.0/24", 254),
            item(Op::Add, "10.0.1.0/24", 254),
            item(Op::Add, "10.0.2.0/24", 52),
        ] {
            m.apply(&i);
        }
        m.apply(&item(Op::Del, "10.0.2.0/24", 52));
        m.see(&msg([10, 0, 0, 0], 24, 254));
        let gone = m.end_sync(true, None);
        assert_eq!(gone.len(), 1);
        let NlObj::Route { route, .. } = item(Op::Add, "10.0.1.0/24", 254).obj else {
            panic!()
        };
        // An IPv4 route the kernel states has a metric, 0 when unsaid.
        assert_eq!(
            gone[0],
            Route {
                metric: Some(0),
                ..route
            }
        );
        assert_eq!(m.route_count(), 1);
    }

    #[test]
    fn longest_match_prefers_the_most_specific() {
        let mut m = NsMirror::default();
        m.see(&msg([0, 0, 0, 0], 0, 52));
        m.see(&msg([192, 168, 1, 0], 24, 52));
        m.see(&msg([192, 168, 1, 0], 25, 53));
        m.end_sync(true, None);
        let r = m
            .longest_match(52, "192.168.1.90".parse().unwrap())
            .unwrap();
        assert_eq!(r.dst.as_deref(), Some("192.168.1.0/24"));
        let r = m.longest_match(52, "10.1.1.1".parse().unwrap()).unwrap();
        assert_eq!(r.dst.as_deref(), Some("0.0.0.0/0"));
        assert!(m.longest_match(54, "10.1.1.1".parse().unwrap()).is_none());
    }

    #[test]
    fn link_transitions_are_reported() {
        let mut m = NsMirror::default();
        let up = |up| NlItem {
            seq: 0,
            portid: 0,
            flags: 0,
            obj: NlObj::Link(LinkChange {
                deleted: false,
                ifindex: 3,
                name: Some("tailscale0".into()),
                up: Some(up),
            }),
        };
        assert_eq!(m.apply(&up(true)), Some(false));
        assert_eq!(m.apply(&up(false)), Some(true));
        assert_eq!(m.dev(3).as_deref(), Some("tailscale0"));
    }
}
