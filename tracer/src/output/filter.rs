//! The filters of `watch`, `record` and `guard` (`--table`, `--comm`,
//! `--pid`, `--family`, `--only`, `--netns`), applied to finished events
//! before they reach the outputs.
use crate::event::{Change, Event, Family, Kind};

/// `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    Removals,
    Additions,
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub tables: Vec<u32>,
    pub comms: Vec<String>,
    pub pids: Vec<u32>,
    pub family: Option<Family>,
    pub only: Option<Only>,
    /// --netns names: changes in other namespaces (seen by the syscall
    /// tracepoints, which see every process) are not reported.
    pub netns: Vec<String>,
}

impl Filter {
    /// Whether a change event passes (ready and lost events always pass).
    pub fn pass(&self, e: &Event) -> bool {
        let Some(c) = e.change() else { return true };
        // A replacement both removes a route and adds one.
        let removal = matches!(e.kind, Kind::RouteDel | Kind::RuleDel | Kind::RouteReplace);
        let addition = !matches!(e.kind, Kind::RouteDel | Kind::RuleDel);
        match self.only {
            Some(Only::Removals) if !removal => return false,
            Some(Only::Additions) if !addition => return false,
            _ => {}
        }
        let (table, family) = table_family(c);
        if !self.tables.is_empty() && !table.is_some_and(|t| self.tables.contains(&t)) {
            return false;
        }
        if self.family.is_some() && family != self.family {
            return false;
        }
        if !self.pids.is_empty()
            && !c
                .process
                .as_ref()
                .is_some_and(|p| self.pids.contains(&p.pid))
        {
            return false;
        }
        if !self.netns.is_empty()
            && !c
                .netns
                .name
                .as_ref()
                .is_some_and(|n| self.netns.contains(n))
        {
            return false;
        }
        if !self.comms.is_empty()
            && !c.process.as_ref().is_some_and(|p| {
                self.comms
                    .iter()
                    .any(|w| crate::event::comm_matches(&p.comm, w))
            })
        {
            return false;
        }
        true
    }
}

fn table_family(c: &Change) -> (Option<u32>, Option<Family>) {
    match (&c.route, &c.rule) {
        (Some(r), _) => (r.table, r.family),
        (_, Some(r)) => (r.table, r.family),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Netns, Route, Source};

    fn route_del_in(ns: Option<&str>) -> Event {
        Event {
            ts: String::new(),
            kind: Kind::RouteDel,
            source: Source::Tracepoint,
            body: Body::Change(Box::new(Change {
                process: None,
                netns: Netns {
                    inode: Some(1),
                    name: ns.map(String::from),
                },
                rule: None,
                route: Some(Route::default()),
                result: Some("ok".into()),
                cause: None,
                old: None,
                nexthop: None,
                old_nexthop: None,
                cause_nhid: None,
                nl_seq: None,
                note: None,
            })),
        }
    }

    #[test]
    fn netns_filter_keeps_only_named_namespaces() {
        let f = Filter {
            netns: vec!["lab".into()],
            ..Filter::default()
        };
        assert!(f.pass(&route_del_in(Some("lab"))));
        assert!(!f.pass(&route_del_in(Some("other"))));
        assert!(!f.pass(&route_del_in(None)));
        assert!(Filter::default().pass(&route_del_in(None)));
    }
}
