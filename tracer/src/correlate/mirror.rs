//! The tracer's copy of each watched namespace's links and routes, from an
//! initial dump plus notifications. It names devices for events and, after
//! a flush the kernel does not announce (IPv4 routes removed by link down,
//! address removal), tells which routes vanished by diffing a fresh dump.
use std::collections::HashMap;

use crate::{
    event::{Family, Op, Route},
    netlink::decode::{LinkChange, NlItem, NlObj},
};

/// Identity of a route inside a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub family: Option<Family>,
    pub table: Option<u32>,
    pub dst: Option<String>,
    pub metric: u32,
}

impl RouteKey {
    pub fn of(r: &Route) -> Self {
        RouteKey {
            family: r.family,
            table: r.table,
            dst: r.dst.clone(),
            metric: r.metric.unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Link {
    pub name: Option<String>,
    pub up: bool,
}

/// One namespace's state.
#[derive(Clone, Debug, Default)]
pub struct NsMirror {
    pub links: HashMap<u32, Link>,
    pub routes: HashMap<RouteKey, Route>,
}

impl NsMirror {
    /// Apply a notification. Returns the link's previous "up" state for link
    /// messages, so callers can see a transition.
    pub fn apply(&mut self, item: &NlItem) -> Option<bool> {
        match &item.obj {
            NlObj::Route { op: Op::Add, route } => {
                self.routes.insert(RouteKey::of(route), route.clone());
                None
            }
            NlObj::Route { op: Op::Del, route } => {
                self.routes.remove(&RouteKey::of(route));
                None
            }
            NlObj::Link(l) => self.apply_link(l),
            _ => None,
        }
    }

    fn apply_link(&mut self, l: &LinkChange) -> Option<bool> {
        if l.deleted {
            return self.links.remove(&l.ifindex).map(|old| old.up);
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

    /// Replace the routes from a dump and return the routes that were in the
    /// mirror but are not in the dump, sorted for stable output.
    pub fn replace_routes(&mut self, items: &[NlItem]) -> Vec<Route> {
        let mut fresh = HashMap::new();
        for i in items {
            if let NlObj::Route { route, .. } = &i.obj {
                fresh.insert(RouteKey::of(route), route.clone());
            }
        }
        let mut gone: Vec<(RouteKey, Route)> = self
            .routes
            .iter()
            .filter(|(k, _)| !fresh.contains_key(*k))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        self.routes = fresh;
        gone.into_iter().map(|(_, r)| r).collect()
    }

    /// Name of an interface index.
    pub fn dev(&self, ifindex: u32) -> Option<String> {
        self.links.get(&ifindex).and_then(|l| l.name.clone())
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
                    ..Route::default()
                },
            },
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
        let gone = m.replace_routes(&[item(Op::Add, "10.0.0.0/24", 254)]);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].dst.as_deref(), Some("10.0.1.0/24"));
        assert_eq!(m.routes.len(), 1);
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
