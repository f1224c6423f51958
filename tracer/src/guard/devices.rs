//! Device names by interface index, per namespace, as the routes the guard
//! saw named them. A route the kernel removes with its device (link
//! deletion) is often reported by index only, the device being gone by
//! then; the guard names it from what it saw, so that an expectation that
//! names the device still matches, and a repair knows which device to wait
//! for.
use std::collections::HashMap;

use crate::event::{Body, Event, Route};

/// Bound on the names kept (one per device and namespace in practice).
const MAX: usize = 4096;

#[derive(Debug, Default)]
pub struct Devices {
    names: HashMap<(u32, u32), String>,
}

impl Devices {
    fn learn(&mut self, inode: u32, r: &Route) {
        if let (Some(d), Some(i)) = (&r.dev, r.ifindex) {
            if self.names.len() >= MAX {
                self.names.clear();
            }
            self.names.insert((inode, i), d.clone());
        }
        for h in &r.nexthops {
            if let (Some(d), Some(i)) = (&h.dev, h.ifindex) {
                self.names.insert((inode, i), d.clone());
            }
        }
    }

    /// Learns the names `e` shows; a copy of `e` with the devices it gives
    /// by index only named, when there are any to name.
    pub fn name(&mut self, e: &Event) -> Option<Event> {
        let (inode, route) = match &e.body {
            Body::State(s) => (s.netns.inode?, s.route.as_ref()?),
            Body::Change(c) => (c.netns.inode?, c.route.as_ref()?),
            _ => return None,
        };
        self.learn(inode, route);
        let unnamed = (route.dev.is_none() && route.ifindex.is_some())
            || route
                .nexthops
                .iter()
                .any(|h| h.dev.is_none() && h.ifindex.is_some());
        if !unnamed {
            return None;
        }
        let mut copy = e.clone();
        let r = match &mut copy.body {
            Body::State(s) => s.route.as_mut()?,
            Body::Change(c) => c.route.as_mut()?,
            _ => return None,
        };
        r.name_devs(|i| self.names.get(&(inode, i)).cloned());
        Some(copy)
    }
}
