//! Asking the kernel how a destination is routed now: the route it chooses
//! (RTM_GETROUTE with RTM_F_FIB_MATCH, so the FIB entry and its table come
//! back), and the rules in priority order with what each did, evaluated
//! against the rule dump.
use std::{fs::File, net::IpAddr, os::unix::fs::MetadataExt as _};

use anyhow::{Result, anyhow};
use netlink_sys::Socket;
use serde::Serialize;

use crate::{
    event::{Family, Netns, Route, Rule},
    netlink::{
        decode::{NlItem, NlObj},
        names::TableNames,
        socket::{self, DumpKind, RouteQuery},
    },
    nsfs::open_named,
    packet::cause::{Selector, rule_mismatch},
    prefix::covers,
};

/// The question: a packet to `dst`, from `src`, arriving on `iif` (or sent
/// by the host itself), with `mark`.
#[derive(Clone, Debug, Serialize)]
pub struct Query {
    pub dst: IpAddr,
    pub src: IpAddr,
    /// The source was not given and was picked by the tracer.
    pub src_assumed: bool,
    pub iif: Option<String>,
    pub mark: u32,
}

/// What one rule did for the packet.
#[derive(Clone, Debug, Serialize)]
pub struct RuleStep {
    pub rule: Rule,
    /// "skipped" (does not select the packet), "no_match" (selects it, but
    /// its table had no route, or a throw route), "matched", or "stop" (an
    /// unreachable, blackhole or prohibit rule ended the lookup).
    pub verdict: &'static str,
    /// Why it was skipped.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Lookup {
    pub netns: Netns,
    pub query: Query,
    /// Rules in priority order, up to the one that decided.
    pub rules: Vec<RuleStep>,
    /// The route chosen, with its table.
    pub route: Option<Route>,
    /// The kernel's error when it has no route (e.g. "Network is unreachable").
    pub error: Option<String>,
    /// The kernel's routes and rules now (for the history).
    #[serde(skip)]
    pub routes_now: Vec<Route>,
    #[serde(skip)]
    pub rules_now: Vec<Rule>,
}

/// A socket in the tracer's namespace or a named one.
pub struct NsSocket {
    pub socket: Socket,
    pub netns: Netns,
    seq: u32,
}

impl NsSocket {
    pub fn open(name: Option<&str>) -> Result<NsSocket> {
        let file: Option<File> = name
            .map(|n| open_named(n).map_err(|e| anyhow!("--netns {n}: {e}")))
            .transpose()?;
        let inode = match &file {
            Some(f) => f.metadata()?.ino() as u32,
            None => std::fs::metadata("/proc/self/ns/net")?.ino() as u32,
        };
        let socket = socket::dump_socket(file.as_ref())?;
        Ok(NsSocket {
            socket,
            netns: Netns {
                inode: Some(inode),
                name: name.map(str::to_string),
            },
            seq: 0,
        })
    }

    pub fn dump(&mut self, what: DumpKind) -> Result<Vec<NlItem>> {
        self.seq += 1;
        socket::dump(&self.socket, what, self.seq)
    }

    fn get_route(&mut self, q: &RouteQuery) -> Result<Route> {
        self.seq += 1;
        socket::get_route(&self.socket, q, self.seq)
    }
}

/// Interface names by index, and the first host route through each
/// interface (a plausible source for packets arriving on it).
struct Links {
    names: Vec<(u32, String)>,
}

impl Links {
    /// The namespace's interfaces.
    fn dump(ns: &mut NsSocket) -> Result<Links> {
        Ok(Links {
            names: ns
                .dump(DumpKind::Links)?
                .into_iter()
                .filter_map(|i| match i.obj {
                    NlObj::Link(l) => Some((l.ifindex, l.name?)),
                    _ => None,
                })
                .collect(),
        })
    }

    fn index(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| n == name).map(|(i, _)| *i)
    }
    fn name(&self, i: u32) -> Option<String> {
        self.names
            .iter()
            .find(|(x, _)| *x == i)
            .map(|(_, n)| n.clone())
    }
}

/// A source for a packet arriving on `iif` when none was given: the
/// destination of a host route out of `iif` (a peer behind it), else a
/// documentation address (192.0.2.1, 2001:db8::1).
fn assumed_source(routes: &[Route], ifindex: u32, v6: bool) -> IpAddr {
    routes
        .iter()
        .filter(|r| r.ifindex == Some(ifindex) && r.rtype.as_deref() == Some("unicast"))
        .filter_map(|r| {
            let (a, l) = r.dst.as_deref()?.split_once('/')?;
            let a: IpAddr = a.parse().ok()?;
            (a.is_ipv6() == v6 && (l == "32" || l == "128")).then_some(a)
        })
        .next()
        .unwrap_or_else(|| {
            if v6 {
                "2001:db8::1".parse().unwrap()
            } else {
                "192.0.2.1".parse().unwrap()
            }
        })
}

pub fn lookup(
    ns: &mut NsSocket,
    dst: IpAddr,
    from: Option<IpAddr>,
    iif: Option<&str>,
    mark: u32,
    names: &TableNames,
) -> Result<Lookup> {
    let links = Links::dump(ns)?;
    let ifindex = match iif {
        Some(name) => Some(links.index(name).ok_or_else(|| {
            anyhow!(
                "--iif {name}: no such interface in {}",
                ns.netns.name.as_deref().unwrap_or("this namespace")
            )
        })?),
        None => None,
    };
    let routes = dump_routes(ns, &links)?;
    let (src, src_assumed) = source(dst, from, ifindex, &routes)?;
    let query = Query {
        dst,
        src,
        src_assumed,
        iif: iif.map(str::to_string),
        mark,
    };
    let (route, error) = chosen_route(
        ns,
        &RouteQuery {
            src,
            dst,
            iif: ifindex.unwrap_or(0),
            mark,
        },
        &links,
        names,
    );
    let family = if dst.is_ipv6() {
        Family::Inet6
    } else {
        Family::Inet
    };
    let rules = dump_rules(ns, names, family)?;
    let steps = walk(
        &rules,
        &Selector {
            family,
            src,
            dst,
            iif: iif.unwrap_or(""),
            mark,
            proto: 0,
        },
        route.as_ref().and_then(|r| r.table),
        &routes,
    );
    Ok(Lookup {
        netns: ns.netns.clone(),
        query,
        rules: steps,
        route,
        error,
        routes_now: routes,
        rules_now: rules,
    })
}

/// The namespace's routes, with their device names filled in.
fn dump_routes(ns: &mut NsSocket, links: &Links) -> Result<Vec<Route>> {
    Ok(ns
        .dump(DumpKind::Routes)?
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Route { mut route, .. } => {
                route.name_devs(|i| links.name(i));
                Some(route)
            }
            _ => None,
        })
        .collect())
}

/// The packet's source and whether it was assumed: `from`, else a peer
/// behind the arrival interface, else the unspecified address.
fn source(
    dst: IpAddr,
    from: Option<IpAddr>,
    ifindex: Option<u32>,
    routes: &[Route],
) -> Result<(IpAddr, bool)> {
    let (src, src_assumed) = match (from, ifindex) {
        (Some(s), _) => (s, false),
        (None, Some(i)) => (assumed_source(routes, i, dst.is_ipv6()), true),
        (None, None) => (
            if dst.is_ipv6() {
                "::".parse().unwrap()
            } else {
                "0.0.0.0".parse().unwrap()
            },
            false,
        ),
    };
    if src.is_ipv6() != dst.is_ipv6() {
        return Err(anyhow!("--from {src} and {dst} are of different families"));
    }
    Ok((src, src_assumed))
}

/// The route the kernel chooses for `q`, with its table and device names,
/// or the kernel's error when it has none.
fn chosen_route(
    ns: &mut NsSocket,
    q: &RouteQuery,
    links: &Links,
    names: &TableNames,
) -> (Option<Route>, Option<String>) {
    match ns.get_route(q) {
        Ok(mut r) => {
            r.table_name = r.table.and_then(|t| names.name(t));
            r.name_devs(|i| links.name(i));
            (Some(r), None)
        }
        Err(e) => (None, Some(format!("{:#}", e.root_cause()))),
    }
}

/// The namespace's rules of `family` (or of none), with table names, in
/// priority order.
fn dump_rules(ns: &mut NsSocket, names: &TableNames, family: Family) -> Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = ns
        .dump(DumpKind::Rules)?
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Rule { mut rule, .. } => {
                rule.table_name = rule.table.and_then(|t| names.name(t));
                Some(*rule)
            }
            _ => None,
        })
        .collect();
    rules.retain(|r| r.family.is_none_or(|f| f == family));
    rules.sort_by_key(|r| r.priority.unwrap_or(0));
    Ok(rules)
}

/// The rules in order with what each did, up to the decision: the first
/// selecting rule that looks up the chosen table (when there is a route),
/// or the first selecting unreachable/blackhole/prohibit rule.
fn walk(rules: &[Rule], p: &Selector, chosen: Option<u32>, routes: &[Route]) -> Vec<RuleStep> {
    let mut out = Vec::new();
    for r in rules {
        if let Some(why) = rule_mismatch(r, p) {
            out.push(RuleStep {
                rule: r.clone(),
                verdict: "skipped",
                reason: Some(why),
            });
            continue;
        }
        let action = r.action.as_deref().unwrap_or("table");
        if action != "table" {
            out.push(RuleStep {
                rule: r.clone(),
                verdict: if action == "nop" || action == "goto" {
                    "no_match"
                } else {
                    "stop"
                },
                reason: None,
            });
            if action == "nop" || action == "goto" {
                continue;
            }
            break;
        }
        let hit = chosen.is_some() && r.table == chosen && table_covers(routes, r.table, p.dst);
        out.push(RuleStep {
            rule: r.clone(),
            verdict: if hit { "matched" } else { "no_match" },
            reason: None,
        });
        if hit {
            break;
        }
    }
    out
}

/// Whether some non-throw route in `table` covers `dst` (the lookup would
/// stop there).
fn table_covers(routes: &[Route], table: Option<u32>, dst: IpAddr) -> bool {
    routes.iter().any(|r| {
        r.table == table
            && r.rtype.as_deref() != Some("throw")
            && r.dst.as_deref().is_some_and(|d| covers(d, dst))
    })
}

impl Lookup {
    /// The rule that decided, if the walk reached one.
    pub fn decided(&self) -> Option<&RuleStep> {
        self.rules
            .last()
            .filter(|s| s.verdict == "matched" || s.verdict == "stop")
    }
}
