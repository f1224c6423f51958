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
