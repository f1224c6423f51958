//! Asking the kernel how a destination is routed now: the route it chooses
//! (RTM_GETROUTE with RTM_F_FIB_MATCH, so the FIB entry and its table come
//! back), and the rules in priority order with what each did, walked
//! (explain/offline.rs) on the rule and route dumps.
use std::{fs::File, net::IpAddr, os::unix::fs::MetadataExt as _};

use anyhow::Result;
use netlink_sys::Socket;
use serde::Serialize;

use crate::{
    event::{Netns, Route, Rule},
    netlink::{
        decode::{NlItem, NlObj},
        names::TableNames,
        socket::{self, DumpKind, RouteQuery},
    },
};

use super::{
    offline::{self, Question, Walk},
    source::behind,
};

/// Why the live kernel could not answer, or the question is not one.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("--netns {0}: {1}")]
    Netns(String, String),
    #[error("--iif {0}: no such interface in {1}")]
    Iif(String, String),
    #[error("asking the kernel: {0}")]
    Kernel(String),
    /// Not a question the tracer can answer alone: the caller must fix it.
    #[error("{0}")]
    Question(String),
}

impl AskError {
    /// Whether the journal may answer instead (the live kernel cannot).
    pub fn journal_may_answer(&self) -> bool {
        !matches!(self, AskError::Question(_))
    }
}

fn kernel(e: anyhow::Error) -> AskError {
    AskError::Kernel(format!("{e:#}"))
}

/// The question: a packet to `dst`, from `src`, arriving on `iif` (or sent
/// by the host itself), with `mark`.
#[derive(Clone, Debug, Serialize)]
pub struct Query {
    pub dst: IpAddr,
    pub src: IpAddr,
    /// The source was not given and was picked by the tracer.
    pub src_assumed: bool,
    /// Why the picked source lies behind the interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_why: Option<String>,
    pub iif: Option<String>,
    pub mark: u32,
}

/// What one rule did for the packet.
#[derive(Clone, Debug, Serialize)]
pub struct RuleStep {
    pub rule: Rule,
    /// "skipped" (does not select the packet), "no_match" (selects it, but
    /// its table had no route, or a throw route), "matched", "stop" (an
    /// unreachable, blackhole or prohibit rule ended the lookup), "goto",
    /// "suppressed" (suppress_prefixlength), or "unknown" (a selector the
    /// question does not say).
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
    /// Where the answer comes from: "kernel" (asked now) or "journal" (a
    /// past state rebuilt from it, walked by the tracer).
    pub answered_by: &'static str,
    /// The walk's own answer when the kernel refused the lookup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub walk_route: Option<Route>,
    /// Selectors the walk could not evaluate, and what else it could not know.
    pub unknown: Vec<String>,
    /// With the journal's answer: the snapshot the state starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_from: Option<String>,
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
    pub fn open(name: Option<&str>) -> Result<NsSocket, AskError> {
        let netns = |e: String| AskError::Netns(name.unwrap_or("").to_string(), e);
        let file: Option<File> = name
            .map(|n| crate::enrich::netns_open::open(n).map_err(|e| netns(format!("{e:#}"))))
            .transpose()?;
        let inode = match &file {
            Some(f) => f.metadata().map_err(|e| netns(e.to_string()))?.ino() as u32,
            None => std::fs::metadata("/proc/self/ns/net")
                .map_err(|e| AskError::Kernel(e.to_string()))?
                .ino() as u32,
        };
        let socket = socket::dump_socket(file.as_ref()).map_err(|e| match name {
            Some(_) => netns(format!("{e:#}")),
            None => kernel(e),
        })?;
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

    pub fn get_route(&mut self, q: &RouteQuery) -> Result<Route> {
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

/// Ask the kernel about `q` (its `iif` a name in the namespace) and walk
/// the rule and route dumps with it.
pub fn lookup(ns: &mut NsSocket, q: &Question, names: &TableNames) -> Result<Lookup, AskError> {
    let links = Links::dump(ns).map_err(kernel)?;
    let dst = q
        .dst
        .ok_or_else(|| AskError::Question("no destination".into()))?;
    let ifindex = match q.iif.as_deref() {
        Some(name) => Some(links.index(name).ok_or_else(|| {
            AskError::Iif(
                name.to_string(),
                ns.netns
                    .name
                    .as_deref()
                    .unwrap_or("this namespace")
                    .to_string(),
            )
        })?),
        None => None,
    };
    let routes = dump_routes(ns, &links).map_err(kernel)?;
    let rules = dump_rules(ns, names).map_err(kernel)?;
    let query = source(dst, q.src, q.iif.as_deref(), &routes)?;
    let (route, error) = chosen_route(
        ns,
        &RouteQuery {
            src: query.src,
            dst,
            iif: ifindex.unwrap_or(0),
            mark: q.mark,
        },
        &links,
        names,
    );
    let walk = offline::walk(
        &rules,
        &routes,
        &Question {
            src: Some(query.src),
            ..q.clone()
        },
    );
    Ok(Lookup::from_walk(
        ns.netns.clone(),
        Query {
            mark: q.mark,
            ..query
        },
        walk,
        (route, error),
        (routes, rules),
    ))
}

impl Lookup {
    /// A lookup from a walk; `kernel` is the kernel's answer when it was
    /// asked (the walk's own route is then kept only if the kernel refused).
    pub fn from_walk(
        netns: Netns,
        query: Query,
        walk: Walk,
        kernel: (Option<Route>, Option<String>),
        now: (Vec<Route>, Vec<Rule>),
    ) -> Lookup {
        let Walk {
            steps,
            route,
            error,
            unknown,
        } = walk;
        let (k_route, k_error) = kernel;
        let asked = k_route.is_some() || k_error.is_some();
        let (route, error, walk_route, answered_by) = if asked {
            let refused = k_route.is_none();
            (k_route, k_error, route.filter(|_| refused), "kernel")
        } else {
            let error = error.map(|e| e.text());
            (route, error, None, "journal")
        };
        Lookup {
            netns,
            query,
            rules: steps,
            route,
            error,
            answered_by,
            walk_route,
            unknown,
            state_from: None,
            routes_now: now.0,
            rules_now: now.1,
        }
    }
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

/// The packet's source: `from`, else an address behind the arrival
/// interface (or an error asking for `--from`), else the unspecified
/// address (a packet this host sends).
pub fn source(
    dst: IpAddr,
    from: Option<IpAddr>,
    iif: Option<&str>,
    routes: &[Route],
) -> Result<Query, AskError> {
    let (src, src_assumed, src_why) = match (from, iif) {
        (Some(s), _) => (s, false, None),
        (None, Some(i)) => match behind(routes, i, dst.is_ipv6()) {
            Some(b) => (b.addr, true, Some(b.why)),
            None => {
                return Err(AskError::Question(format!(
                    "--iif {i}: no address is known to lie behind {i} (no connected subnet or route through it); give --from SRC"
                )));
            }
        },
        (None, None) => (
            if dst.is_ipv6() {
                IpAddr::from([0u16; 8])
            } else {
                IpAddr::from([0u8; 4])
            },
            false,
            None,
        ),
    };
    if src.is_ipv6() != dst.is_ipv6() {
        return Err(AskError::Question(format!(
            "--from {src} and {dst} are of different families"
        )));
    }
    Ok(Query {
        dst,
        src,
        src_assumed,
        src_why,
        iif: iif.map(str::to_string),
        mark: 0,
    })
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

/// The namespace's rules, with table names, in the kernel's list order.
fn dump_rules(ns: &mut NsSocket, names: &TableNames) -> Result<Vec<Rule>> {
    Ok(ns
        .dump(DumpKind::Rules)?
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Rule { mut rule, .. } => {
                rule.table_name = rule.table.and_then(|t| names.name(t));
                Some(*rule)
            }
            _ => None,
        })
        .collect())
}

impl Lookup {
    /// The rule that decided, if the walk reached one.
    pub fn decided(&self) -> Option<&RuleStep> {
        self.rules
            .last()
            .filter(|s| s.verdict == "matched" || s.verdict == "stop")
    }

    /// The table the answer comes from: the kernel's route's, else the
    /// walk's.
    pub fn table(&self) -> Option<u32> {
        self.route
            .as_ref()
            .or(self.walk_route.as_ref())
            .and_then(|r| r.table)
            .or_else(|| self.decided().and_then(|s| s.rule.table))
    }
}
