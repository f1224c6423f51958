//! Devices named from the journal. A route the kernel removed with its
//! interface is written with the interface's index only (`dev` null: the
//! name was gone by then), which a report would show as `dev #7`. An
//! earlier event about the same namespace (its snapshot, the route's
//! addition) names the device; the report uses that name.
use std::collections::HashMap;

use super::identity::NsKey;
use crate::{
    event::{Change, Route},
    journal::read::{Data, Entry},
};

/// Names the unnamed devices of `entries` (in time order) from the
/// entries before them.
pub fn name_devices(entries: &mut [Entry]) {
    let mut names = Names::default();
    for e in entries {
        match &mut e.data {
            Data::Change(_, c) => names.change(c),
            Data::Snapshot(s) => {
                let ns = NsKey::of(&s.netns);
                if let Some(r) = &mut s.route {
                    names.route(&ns, r);
                }
            }
            Data::Loop(_, l) => {
                if let Some(s) = &mut l.suspect {
                    names.change(&mut s.change);
                }
            }
            _ => {}
        }
    }
}

/// Device names by namespace and interface index, as last seen.
#[derive(Default)]
struct Names(HashMap<(NsKey, u32), String>);

impl Names {
    fn change(&mut self, c: &mut Change) {
        let ns = NsKey::of(&c.netns);
        for r in c.route.iter_mut().chain(c.old.iter_mut()) {
            self.route(&ns, r);
        }
        for n in c.nexthop.iter_mut().chain(c.old_nexthop.iter_mut()) {
            self.dev(&ns, &mut n.dev, n.ifindex);
        }
    }

    fn route(&mut self, ns: &NsKey, r: &mut Route) {
        self.dev(ns, &mut r.dev, r.ifindex);
        for h in &mut r.nexthops {
            self.dev(ns, &mut h.dev, h.ifindex);
        }
    }

    fn dev(&mut self, ns: &NsKey, dev: &mut Option<String>, index: Option<u32>) {
        let Some(i) = index else { return };
        match dev {
            Some(d) => {
                self.0.insert((ns.clone(), i), d.clone());
            }
            None => *dev = self.0.get(&(ns.clone(), i)).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::journal::read::{Location, parse_line};

    fn entry(v: serde_json::Value) -> Entry {
        let at = Location {
            file: "t".into(),
            line: 1,
        };
        parse_line(at, v.to_string().as_bytes(), true)
            .unwrap()
            .unwrap()
    }

    fn route_event(kind: &str, ns: u32, dev: Option<&str>, ifindex: u32) -> Entry {
        entry(
            json!({"ts": "2026-04-10T06:52:46Z", "kind": kind, "process": null,
            "netns": {"inode": ns, "name": null},
            "route": {"family": "inet", "table": 254, "dst": "10.2.0.0/24",
                "dev": dev, "ifindex": ifindex},
            "result": "ok", "cause": null}),
        )
    }

    fn dev(e: &Entry) -> Option<String> {
        match &e.data {
            Data::Change(_, c) => c.route.as_ref().and_then(|r| r.dev.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_device_is_named_from_an_earlier_event_in_its_namespace() {
        let mut entries = vec![
            route_event("route_del", 1, None, 5), // before anything named 5
            route_event("route_add", 1, Some("d2"), 5),
            route_event("route_del", 1, None, 5),
            route_event("route_del", 2, None, 5), // another namespace's 5
        ];
        name_devices(&mut entries);
        let devs: Vec<Option<String>> = entries.iter().map(dev).collect();
        assert_eq!(devs, [None, Some("d2".into()), Some("d2".into()), None]);
    }
}
