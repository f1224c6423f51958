//! `tracer walk-check` (hidden, for the integration tests): `explain`'s
//! offline walk held against the kernel. Random rule and route sets
//! (priorities, selectors, goto, suppress_prefixlength, throw, unreachable,
//! blackhole and prohibit routes and rules, several tables, metrics, IPv4
//! and IPv6) are built with `ip -batch` in an empty namespace; the rules
//! and routes are dumped as a recording's snapshot holds them (through
//! JSON), then random lookups (destinations, sources, input interfaces,
//! marks) are asked of both the walk and the kernel (RTM_GETROUTE).
//! Every difference is printed with its case; the seed is printed first.
use std::{io::Write as _, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    cli::WalkCheckArgs,
    event::{Route, Rule},
    explain::{
        lookup::NsSocket,
        offline::{self, Question, Walk},
    },
    netlink::{decode::NlObj, socket::DumpKind, socket::RouteQuery},
};

#[path = "walk_gen.rs"]
mod walk_gen;
use walk_gen::{Case, DEVS};

/// `ip -n NETNS [-4|-6] -force -batch -` with `lines` on its stdin (a
/// line starting `-4 ` or `-6 ` goes to that family's batch). Returns
/// the lines refused and the lines sent.
fn ip_batch(netns: &str, lines: &[String]) -> Result<(usize, usize)> {
    let mut refused = 0;
    for fam in [None, Some("-4"), Some("-6")] {
        let batch: Vec<&str> = lines
            .iter()
            .filter_map(|l| match (fam, l.split_once(' ')) {
                (Some(f), Some((p, rest))) if p == f => Some(rest),
                (None, _) if !l.starts_with("-4 ") && !l.starts_with("-6 ") => Some(l.as_str()),
                _ => None,
            })
            .collect();
        if batch.is_empty() {
            continue;
        }
        let mut args = vec!["-n", netns];
        args.extend(fam);
        args.extend(["-force", "-batch", "-"]);
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running ip -batch")?;
        let mut stdin = child.stdin.take().context("ip's stdin")?;
        stdin.write_all((batch.join("\n") + "\n").as_bytes())?;
        drop(stdin);
        let out = child.wait_with_output().context("waiting for ip")?;
        refused += String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("Command failed"))
            .count();
    }
    Ok((refused, lines.len()))
}

/// Forwarding on (else the kernel refuses every forwarded lookup), no
/// reverse-path filter and no redirects (their source checks are not
/// routing decisions), no DAD; then the interfaces and their addresses.
fn setup(netns: &str) -> Result<()> {
    let sysctl = [
        "net/ipv4/ip_forward=1",
        "net/ipv4/conf/all/rp_filter=0",
        "net/ipv4/conf/default/rp_filter=0",
        "net/ipv4/conf/all/send_redirects=0",
        "net/ipv4/conf/default/send_redirects=0",
        "net/ipv6/conf/all/forwarding=1",
        "net/ipv6/conf/default/forwarding=1",
        "net/ipv6/conf/default/accept_dad=0",
    ]
    .iter()
    .map(|kv| {
        let (k, v) = kv.split_once('=').expect("k=v");
        format!("echo {v} > /proc/sys/{k}")
    })
    .collect::<Vec<_>>()
    .join(" && ");
    let st = Command::new("ip")
        .args(["netns", "exec", netns, "sh", "-c", &sysctl])
        .status()
        .context("ip netns exec")?;
    if !st.success() {
        bail!("setting the sysctls in {netns} failed");
    }
    match ip_batch(netns, &walk_gen::links())? {
        (0, _) => Ok(()),
        (n, _) => bail!("{n} of the interface commands failed in {netns}"),
    }
}

/// The namespace's rules and routes as a snapshot holds them: decoded,
/// written as JSON and read back.
fn dump(ns: &mut NsSocket) -> Result<(Vec<Rule>, Vec<Route>)> {
    let links: Vec<(u32, String)> = ns
        .dump(DumpKind::Links)?
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Link(l) => Some((l.ifindex, l.name?)),
            _ => None,
        })
        .collect();
    let name = |i: u32| links.iter().find(|l| l.0 == i).map(|l| l.1.clone());
    let mut rules = Vec::new();
    for i in ns.dump(DumpKind::Rules)? {
        if let NlObj::Rule { rule, .. } = i.obj {
            rules.push(serde_json::from_value(serde_json::to_value(*rule)?)?);
        }
    }
    let mut routes = Vec::new();
    for i in ns.dump(DumpKind::Routes)? {
        if let NlObj::Route { mut route, .. } = i.obj {
            route.name_devs(name);
            routes.push(serde_json::from_value(serde_json::to_value(route)?)?);
        }
    }
    Ok((rules, routes))
}

/// The kernel's answer, as (table, prefix, type, metric) or an errno.
type Answer = Result<(Option<u32>, Option<ipnet::IpNet>, String, u32), i32>;

fn of_route(r: &Route) -> (Option<u32>, Option<ipnet::IpNet>, String, u32) {
    let net = match (r.dst.as_deref(), r.family) {
        (Some(d), _) => crate::prefix::parse(d),
        (None, Some(f)) => crate::prefix::parse(f.any()),
        _ => None,
    };
    let rtype = r.rtype.as_deref().unwrap_or("unicast").to_string();
    (
        r.table,
        net.map(|n| n.trunc()),
        rtype,
        r.metric.unwrap_or(0),
    )
}

fn of_walk(w: &Walk) -> Answer {
    match (&w.route, w.error) {
        (_, Some(e)) => Err(e.errno()),
        (Some(r), None) => Ok(of_route(r)),
        (None, None) => Err(0),
    }
}

fn ask(ns: &mut NsSocket, c: &Case, ifindex: &[(String, u32)]) -> Answer {
    let iif = c
        .iif
        .as_ref()
        .and_then(|n| ifindex.iter().find(|x| &x.0 == n))
        .map_or(0, |x| x.1);
    let q = RouteQuery {
        src: c.src,
        dst: c.dst,
        iif,
        mark: c.mark,
    };
    match ns.get_route(&q) {
        Ok(r) => Ok(of_route(&r)),
        Err(e) => Err(e
            .root_cause()
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .unwrap_or(-1)),
    }
}

fn question(c: &Case) -> Question {
    let unspecified = c.src.is_unspecified();
    Question {
        dst: Some(c.dst),
        src: (!unspecified).then_some(c.src),
        iif: c.iif.clone(),
        mark: c.mark,
        proto: Some(0),
        sport: Some(0),
        dport: Some(0),
        // As RTM_GETROUTE asks: as the caller (root) for a packet the host
        // sends; with an iif, IPv4 rebuilds the flow with uid 0 (as for a
        // real forwarded packet) but IPv6 keeps the query's INVALID_UID.
        uid: Some(if c.iif.is_some() && c.dst.is_ipv6() {
            u32::MAX
        } else {
            0
        }),
        ..Question::default()
    }
}

pub fn run(args: WalkCheckArgs) -> Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("walk-check: seed {seed} (again with --seed {seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    setup(&args.netns)?;
    let mut ns = NsSocket::open(Some(&args.netns))?;
    let ifindex: Vec<(String, u32)> = ns
        .dump(DumpKind::Links)?
        .into_iter()
        .filter_map(|i| match i.obj {
            NlObj::Link(l) => Some((l.name?, l.ifindex)),
            _ => None,
        })
        .collect();
    if DEVS.iter().any(|d| !ifindex.iter().any(|x| x.0 == *d)) {
        bail!(
            "the interfaces {DEVS:?} were not all created in {}",
            args.netns
        );
    }
    let rounds = args.rounds.max(1);
    let per_round = args.cases.div_ceil(rounds);
    let (mut cases, mut diffs) = (0usize, 0usize);
    let (mut total_refused, mut total_sent, mut built) = (0usize, 0usize, 0usize);
    for round in 0..rounds {
        let (setup_lines, generated) = walk_gen::ruleset(&mut rng);
        let (refused, sent) = ip_batch(&args.netns, &setup_lines)?;
        (total_refused, total_sent) = (total_refused + refused, total_sent + sent);
        let (rules, routes) = dump(&mut ns)?;
        built += rules.len() + routes.len();
        let mut shown = false;
        for _ in 0..per_round {
            let c = walk_gen::case(&mut rng, &generated);
            let kernel = ask(&mut ns, &c, &ifindex);
            let walk = offline::walk(&rules, &routes, &question(&c));
            cases += 1;
            if kernel == of_walk(&walk) {
                continue;
            }
            diffs += 1;
            if !shown {
                shown = true;
                println!("round {round} (seed {seed}): ip commands (some refused):");
                for l in &setup_lines {
                    println!("  ip {l}");
                }
                println!("round {round}: the rules as dumped:");
                for r in &rules {
                    println!("  {}", serde_json::to_string(r).unwrap_or_default());
                }
            }
            println!(
                "DIFF round {round} case {c}: kernel {kernel:?}, walk {:?}",
                of_walk(&walk)
            );
            for s in &walk.steps {
                println!(
                    "    rule {} {} {}",
                    s.rule.priority.unwrap_or(0),
                    s.verdict,
                    s.reason.as_deref().unwrap_or("")
                );
            }
        }
        ip_batch(&args.netns, &walk_gen::flush())?;
    }
    println!(
        "walk-check: {rounds} rule and route sets ({built} rules and routes; the kernel refused {total_refused} of {total_sent} generated), {cases} cases, {diffs} differences (seed {seed})"
    );
    if total_refused * 2 > total_sent {
        bail!("the kernel refused most generated rules and routes: the check proves little");
    }
    if diffs > 0 {
        bail!("{diffs} of {cases} lookups differ from the kernel's (seed {seed})");
    }
    Ok(())
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dst {} src {}", self.dst, self.src)?;
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        write!(f, " mark {:#x}", self.mark)
    }
}
