//! `watch` filters, applied to finished events.
use crate::{
    cli::{FamilyArg, OnlyArg, WatchArgs},
    event::{Change, Event, Family, Kind},
    netlink::names::TableNames,
};

#[derive(Clone, Debug, Default)]
pub struct Filter {
    tables: Vec<u32>,
    comms: Vec<String>,
    pids: Vec<u32>,
    family: Option<Family>,
    only: Option<OnlyArg>,
    /// --netns names: changes in other namespaces (seen by the syscall
    /// tracepoints, which see every process) are not reported.
    netns: Vec<String>,
}

impl Filter {
    pub fn from_args(a: &WatchArgs, names: &TableNames) -> anyhow::Result<Filter> {
        let tables = a
            .table
            .iter()
            .map(|t| {
                names.parse(t).ok_or_else(|| {
                    anyhow::anyhow!("unknown --table {t:?}: not a number or a name in rt_tables")
                })
            })
            .collect::<anyhow::Result<Vec<u32>>>()?;
        Ok(Filter {
            tables,
            comms: a.comm.clone(),
            pids: a.pid.clone(),
            family: a.family.map(|f| match f {
                FamilyArg::Inet => Family::Inet,
                FamilyArg::Inet6 => Family::Inet6,
            }),
            only: a.only,
            netns: a.netns.clone(),
        })
    }

    /// Whether a change event passes (ready and lost events always pass).
    pub fn pass(&self, e: &Event) -> bool {
        let Some(c) = e.change() else { return true };
        // A replacement both removes a route and adds one.
        let removal = matches!(e.kind, Kind::RouteDel | Kind::RuleDel | Kind::RouteReplace);
        let addition = !matches!(e.kind, Kind::RouteDel | Kind::RuleDel);
        match self.only {
            Some(OnlyArg::Removals) if !removal => return false,
            Some(OnlyArg::Additions) if !addition => return false,
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
