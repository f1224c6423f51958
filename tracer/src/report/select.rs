//! The report's filters.
//!
//! `--table` and `--dst` choose objects: changes, restores, snapshots and
//! what is missing are all about the chosen rules and routes only. A
//! nexthop object has neither a table nor a destination: with either
//! filter it is left out, and the chosen routes that went with it still
//! name its deletion (`with_nexthop`).
//! `--comm` and `--unit` choose episodes (and loops by their suspect, and
//! missing objects by who removed them), but restores are looked for among
//! every process: what `--comm systemd-network` removed may have been put
//! back by tailscaled.
use std::{collections::BTreeSet, net::IpAddr};

use anyhow::{Result, bail};
use ipnet::IpNet;

use super::identity::{Actor, Object};
use crate::{
    cli::ReportArgs,
    event::{Process, Route, Rule, comm_matches},
    journal::read::{Data, Entry},
    netlink::names::TableNames,
    prefix,
};

#[derive(Clone, Debug, Default)]
pub struct Select {
    /// Each --table: its id (a number, or a name known here) and its name.
    tables: Vec<(Option<u32>, String)>,
    dst: Option<IpNet>,
    comms: Vec<String>,
    units: Vec<String>,
}

impl Select {
    pub fn from_args(a: &ReportArgs, names: &TableNames) -> Result<Select> {
        let dst = match &a.dst {
            None => None,
            Some(d) => Some(prefix::parse(d).ok_or_else(|| {
                anyhow::anyhow!(
                    "--dst {d:?} is not an address or a prefix (e.g. 192.168.1.0/24, 192.168.1.90, fd42::/64)"
                )
            })?),
        };
        for t in &a.table {
            if t.is_empty() {
                bail!("--table needs a table id or name");
            }
        }
        Ok(Select {
            tables: a
                .table
                .iter()
                .map(|t| (names.parse(t), t.clone()))
                .collect(),
            dst,
            comms: a.comm.clone(),
            units: a
                .unit
                .iter()
                .map(|u| {
                    if u.contains('.') {
                        u.clone()
                    } else {
                        format!("{u}.service")
                    }
                })
                .collect(),
        })
    }

    /// Fails, as `watch` does, on a `--table` that names no table: not a
    /// number, not a name in this machine's rt_tables, and not a table
    /// name the journal's events carry (it may come from another machine).
    pub fn check_tables(&self, entries: &[Entry]) -> Result<()> {
        let unknown: Vec<&str> = self
            .tables
            .iter()
            .filter(|(id, _)| id.is_none())
            .map(|(_, t)| t.as_str())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let named = journal_table_names(entries);
        match unknown.iter().find(|t| !named.contains(**t)) {
            Some(t) if t.parse::<u128>().is_ok() => bail!(
                "unknown --table {t:?}: out of range (table ids are 0 to {})",
                u32::MAX
            ),
            Some(t) => bail!(
                "unknown --table {t:?}: not a number, a name in rt_tables, or a table the journal names"
            ),
            None => Ok(()),
        }
    }

    /// The filters in force, for the report's header.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .iter()
            .map(|(_, t)| format!("table {t}"))
            .collect();
        if let Some(n) = self.dst {
            out.push(format!("dst {n}"));
        }
        out.extend(self.comms.iter().map(|c| format!("comm {c}")));
        out.extend(self.units.iter().map(|u| format!("unit {u}")));
        out
    }

    pub fn table(&self, id: Option<u32>, name: Option<&str>) -> bool {
        self.tables.is_empty()
            || self
                .tables
                .iter()
                .any(|(want, t)| (want.is_some() && *want == id) || name == Some(t.as_str()))
    }

    pub fn object(&self, o: &Object) -> bool {
        match o {
            Object::Rule(r) => self.rule(r),
            Object::Route(r) => self.route(r),
            Object::Nexthop(_) => self.tables.is_empty() && self.dst.is_none(),
        }
    }

    fn rule(&self, r: &Rule) -> bool {
        // A rule without a `to` selector steers every destination.
        self.table(r.table, r.table_name.as_deref())
            && match (self.dst, &r.dst) {
                (Some(want), Some(d)) => {
                    prefix::parse(d).is_some_and(|p| prefix::overlaps(want, p))
                }
                _ => true,
            }
    }

    fn route(&self, r: &Route) -> bool {
        if !self.table(r.table, r.table_name.as_deref()) {
            return false;
        }
        let Some(want) = self.dst else { return true };
        let dst = r
            .dst
            .clone()
            .or_else(|| r.family.map(|f| f.any().to_string()));
        dst.as_deref()
            .and_then(prefix::parse)
            .is_some_and(|p| prefix::overlaps(want, p))
    }

    /// Whether a packet to `addr` is to a destination asked for.
    pub fn packet_dst(&self, addr: &str) -> bool {
        let Some(want) = self.dst else { return true };
        addr.parse::<IpAddr>().is_ok_and(|a| want.contains(&a))
    }

    pub fn by_actor(&self) -> bool {
        !self.comms.is_empty() || !self.units.is_empty()
    }

    /// Whether changes by `p` are asked for (`None`: the kernel).
    pub fn actor(&self, p: Option<&Process>) -> bool {
        self.who(
            p.map(|p| p.comm.as_str()),
            p.and_then(|p| p.unit.as_deref()),
        )
    }

    pub fn actor_matches(&self, a: &Actor) -> bool {
        self.who(a.comm.as_deref(), a.unit.as_deref())
    }

    fn who(&self, comm: Option<&str>, unit: Option<&str>) -> bool {
        (self.comms.is_empty()
            || comm.is_some_and(|c| self.comms.iter().any(|w| comm_matches(c, w))))
            && (self.units.is_empty() || unit.is_some_and(|u| self.units.iter().any(|w| w == u)))
    }
}

/// Every table name the events carry (rules, routes, loops' lookups).
fn journal_table_names(entries: &[Entry]) -> BTreeSet<&str> {
    fn of<'a>(rule: Option<&'a Rule>, route: Option<&'a Route>) -> [Option<&'a str>; 2] {
        [
            rule.and_then(|r| r.table_name.as_deref()),
            route.and_then(|r| r.table_name.as_deref()),
        ]
    }
    let mut out = BTreeSet::new();
    for e in entries {
        let names = match &e.data {
            Data::Change(_, c) => of(c.rule.as_ref(), c.route.as_ref()),
            Data::Snapshot(s) => of(s.rule.as_ref(), s.route.as_ref()),
            Data::Loop(_, l) => {
                let c = l.suspect.as_ref().map(|s| &s.change);
                out.extend(l.lookup.as_ref().and_then(|k| k.table_name.as_deref()));
                of(
                    c.and_then(|c| c.rule.as_ref()),
                    c.and_then(|c| c.route.as_ref()),
                )
            }
            _ => continue,
        };
        out.extend(names.into_iter().flatten());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::prefix::overlaps;

    fn p(s: &str) -> IpNet {
        prefix::parse(s).unwrap()
    }

    #[test]
    fn prefixes_overlap_when_one_covers_the_other() {
        assert!(overlaps(p("192.168.1.0/24"), p("192.168.1.90")));
        assert!(overlaps(p("192.168.1.90"), p("192.168.1.0/24")));
        assert!(overlaps(p("0.0.0.0/0"), p("192.168.1.0/24")));
        assert!(overlaps(p("192.168.0.0/16"), p("192.168.1.0/24")));
        assert!(!overlaps(p("10.10.10.0/24"), p("192.168.1.0/24")));
        assert!(!overlaps(p("192.168.1.0/24"), p("::/0")));
        assert!(overlaps(p("fd42::/16"), p("fd42:10:10:10::/64")));
        assert_eq!(p("fd42::1").prefix_len(), 128);
        for bad in [
            "192.168.1.0/33",
            "::/129",
            "x",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "",
        ] {
            assert_eq!(prefix::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn truncated_comms_match_their_full_names() {
        assert!(comm_matches("systemd-network", "systemd-networkd"));
        assert!(comm_matches("tailscaled", "tailscaled"));
        assert!(!comm_matches("tailscaled", "tailscale"));
        assert!(!comm_matches("ip", "ipx"));
    }
}
