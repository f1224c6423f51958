//! Expectations about routing state, written like `ip route` and `ip rule`:
//!
//! - `[TYPE] PREFIX [table T] [dev D] [via GW] [metric M] [proto P]`, TYPE one
//!   of unicast, throw, blackhole, unreachable, prohibit, local, ...;
//!   PREFIX `default` is IPv4's unless `-6` comes first.
//! - `rule PRIORITY [table T | lookup T] [from P] [to P] [fwmark M[/MASK]]
//!   [iif I] [oif O] [blackhole | unreachable | prohibit]`.
//!
//! Only what is written is checked: `rule 5270 table 52` holds while some
//! rule with priority 5270 looks up table 52, whatever its selectors.
use std::{fmt, net::IpAddr};

use anyhow::{Context as _, Result, anyhow, bail};
use ipnet::IpNet;

use crate::{
    describe,
    event::{Family, Route, Rule},
    iface,
    netlink::names::TableNames,
    prefix,
};

const ROUTE_TYPES: [&str; 9] = [
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
];
const RULE_ACTIONS: [&str; 3] = ["blackhole", "unreachable", "prohibit"];

#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    Route(RouteExpect),
    Rule(RuleExpect),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteExpect {
    pub family: Option<Family>,
    pub rtype: Option<String>,
    /// Normalised "addr/len".
    pub dst: String,
    pub table: u32,
    pub dev: Option<String>,
    pub gateway: Option<IpAddr>,
    pub metric: Option<u32>,
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleExpect {
    pub family: Option<Family>,
    pub priority: u32,
    pub table: Option<u32>,
    pub action: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub fwmark: Option<(u32, Option<u32>)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
}

impl RouteExpect {
    /// The route this expectation describes, as an event would carry it.
    pub fn route(&self) -> Route {
        Route {
            family: self.family,
            table: Some(self.table),
            rtype: self.rtype.clone().map(Into::into),
            dst: Some(self.dst.clone()),
            gateway: self.gateway.map(|g| g.to_string()),
            dev: self.dev.clone(),
            metric: self.metric,
            protocol: self.protocol.clone().map(Into::into),
            ..Route::default()
        }
    }
}

impl RuleExpect {
    /// The rule this expectation describes, as an event would carry it.
    pub fn rule(&self) -> Rule {
        Rule {
            family: self.family,
            priority: Some(self.priority),
            table: self.table,
            action: self.action.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
            fwmark: self.fwmark.map(|m| m.0),
            fwmask: self.fwmark.and_then(|m| m.1),
            iif: self.iif.clone(),
            oif: self.oif.clone(),
            ..Rule::default()
        }
    }
}

/// "addr/len" with the address family's full length when none is given;
/// host bits must be clear, as `ip route` requires.
fn prefix(s: &str, v6: bool) -> Result<(Family, String)> {
    if s == "default" || s == "all" {
        return Ok(if v6 {
            (Family::Inet6, "::/0".into())
        } else {
            (Family::Inet, "0.0.0.0/0".into())
        });
    }
    let (a, l) = s.split_once('/').unwrap_or((s, ""));
    let addr: IpAddr = a
        .parse()
        .map_err(|_| anyhow!("{s:?} is not an address or prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = if l.is_empty() {
        max
    } else {
        l.parse()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| anyhow!("{s:?}: bad prefix length"))?
    };
    let net = IpNet::new(addr, len).expect("length checked against the family");
    if !prefix::is_canonical(net) {
        bail!("{s:?} has host bits set beyond /{len}");
    }
    let fam = if addr.is_ipv4() {
        Family::Inet
    } else {
        Family::Inet6
    };
    Ok((fam, net.to_string()))
}

/// A dst as the kernel reports it, normalised like `prefix` does.
fn canon(dst: &str) -> Option<String> {
    prefix::parse(dst).map(|n| n.to_string())
}

fn value<'a>(words: &mut impl Iterator<Item = &'a str>, key: &str) -> Result<&'a str> {
    words.next().ok_or_else(|| anyhow!("`{key}` needs a value"))
}

fn number(s: &str, what: &str) -> Result<u32> {
    let n = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    n.map_err(|_| anyhow!("{what} {s:?} is not a number"))
}

/// An interface name the kernel would accept: an expectation naming one
/// it refuses could never hold.
fn device<'a>(key: &str, s: &'a str) -> Result<&'a str> {
    iface::check_name(s).map_err(|e| anyhow!("{key} {s:?}: {e}"))?;
    Ok(s)
}

fn table(s: &str, names: &TableNames) -> Result<u32> {
    names
        .parse(s)
        .ok_or_else(|| anyhow!("table {s:?} is not a number or a name in rt_tables"))
}

impl Expectation {
    pub fn parse(text: &str, names: &TableNames) -> Result<Expectation> {
        Self::parse_words(text, names).with_context(|| format!("cannot parse expectation {text:?}"))
    }

    fn parse_words(text: &str, names: &TableNames) -> Result<Expectation> {
        let mut words = text.split_whitespace().peekable();
        let v6 = words.next_if(|w| *w == "-6").is_some();
        let v4 = !v6 && words.next_if(|w| *w == "-4").is_some();
        match words.peek() {
            None => bail!("it is empty"),
            Some(&"rule") => {
                words.next();
                let mut r = RuleExpect {
                    family: Some(if v6 { Family::Inet6 } else { Family::Inet }),
                    ..RuleExpect::default()
                };
                let prio = words
                    .next()
                    .ok_or_else(|| anyhow!("`rule` needs a priority"))?;
                r.priority = number(prio, "priority")?;
                while let Some(w) = words.next() {
                    match w {
                        "table" | "lookup" => r.table = Some(table(value(&mut words, w)?, names)?),
                        "from" => r.src = Some(prefix(value(&mut words, w)?, v6)?.1),
                        "to" => r.dst = Some(prefix(value(&mut words, w)?, v6)?.1),
                        "fwmark" => {
                            let v = value(&mut words, w)?;
                            let (m, mask) =
                                v.split_once('/').map_or((v, None), |(a, b)| (a, Some(b)));
                            r.fwmark = Some((
                                number(m, "fwmark")?,
                                mask.map(|m| number(m, "fwmark mask")).transpose()?,
                            ));
                        }
                        "iif" => r.iif = Some(device(w, value(&mut words, w)?)?.to_string()),
                        "oif" => r.oif = Some(device(w, value(&mut words, w)?)?.to_string()),
                        a if RULE_ACTIONS.contains(&a) => r.action = Some(a.to_string()),
                        other => bail!("unknown rule keyword {other:?}"),
                    }
                }
                Ok(Expectation::Rule(r))
            }
            Some(_) => {
                let mut r = RouteExpect {
                    table: 254,
                    ..RouteExpect::default()
                };
                if let Some(t) = words.next_if(|w| ROUTE_TYPES.contains(w)) {
                    r.rtype = Some(t.to_string());
                }
                let dst = words
                    .next()
                    .ok_or_else(|| anyhow!("no destination prefix"))?;
                let (fam, dst) = prefix(dst, v6)?;
                if (v4 && fam != Family::Inet) || (v6 && fam != Family::Inet6) {
                    bail!("{dst} is not of the family asked for");
                }
                r.family = Some(fam);
                r.dst = dst;
                while let Some(w) = words.next() {
                    match w {
                        "table" => r.table = table(value(&mut words, w)?, names)?,
                        "dev" => r.dev = Some(device(w, value(&mut words, w)?)?.to_string()),
                        "via" => {
                            let v = value(&mut words, w)?;
                            r.gateway = Some(
                                v.parse()
                                    .map_err(|_| anyhow!("via {v:?} is not an address"))?,
                            );
                        }
                        "metric" | "preference" | "priority" => {
                            r.metric = Some(number(value(&mut words, w)?, "metric")?)
                        }
                        "proto" => r.protocol = Some(value(&mut words, w)?.to_string()),
                        other => bail!("unknown route keyword {other:?}"),
                    }
                }
                Ok(Expectation::Route(r))
            }
        }
    }

    /// The expectation a present route or rule meets exactly (for
    /// `--expect-current`).
    pub fn of_route(r: &Route) -> Option<Expectation> {
        // The metric 0 the kernel states for an IPv4 route that names none
        // is left unsaid, as `ip route` leaves it out: the expectation is
        // what its text says.
        let metric = r
            .metric
            .filter(|&m| m != 0 || r.family != Some(Family::Inet));
        Some(Expectation::Route(RouteExpect {
            family: r.family,
            rtype: r
                .rtype
                .as_deref()
                .filter(|t| *t != "unicast")
                .map(str::to_string),
            dst: canon(r.dst.as_deref()?)?,
            table: r.table?,
            dev: r.dev.clone(),
            gateway: r.gateway.as_deref().and_then(|g| g.parse().ok()),
            metric,
            protocol: None,
        }))
    }

    pub fn of_rule(r: &Rule) -> Option<Expectation> {
        Some(Expectation::Rule(RuleExpect {
            family: r.family,
            priority: r.priority?,
            table: r.table.filter(|_| r.action.as_deref() == Some("table")),
            action: r
                .action
                .clone()
                .filter(|a| RULE_ACTIONS.contains(&a.as_str())),
            src: r.src.as_deref().and_then(canon),
            dst: r.dst.as_deref().and_then(canon),
            fwmark: r.fwmark.map(|m| (m, r.fwmask)),
            iif: r.iif.clone(),
            oif: r.oif.clone(),
        }))
    }

    pub fn matches_route(&self, r: &Route) -> bool {
        let Expectation::Route(e) = self else {
            return false;
        };
        let eq = |want: &Option<String>, got: &Option<String>| {
            want.is_none() || want.as_deref() == got.as_deref()
        };
        e.family == r.family
            && Some(e.table) == r.table
            && r.dst.as_deref().and_then(canon).as_deref() == Some(e.dst.as_str())
            && (e.rtype.is_none()
                || e.rtype.as_deref() == Some(r.rtype.as_deref().unwrap_or("unicast")))
            && eq(&e.dev, &r.dev)
            && e.protocol
                .as_deref()
                .is_none_or(|p| r.protocol.as_deref() == Some(p))
            && e.metric.is_none_or(|m| r.metric.unwrap_or(0) == m)
            && e.gateway
                .is_none_or(|g| r.gateway.as_deref().and_then(|x| x.parse().ok()) == Some(g))
    }

    pub fn matches_rule(&self, r: &Rule) -> bool {
        let Expectation::Rule(e) = self else {
            return false;
        };
        let eq = |want: &Option<String>, got: &Option<String>| {
            want.is_none() || want.as_deref() == got.as_deref().and_then(canon).as_deref()
        };
        let same = |want: &Option<String>, got: &Option<String>| {
            want.is_none() || want.as_deref() == got.as_deref()
        };
        e.family == r.family
            && Some(e.priority) == r.priority
            && e.table.is_none_or(|t| r.table == Some(t))
            && same(&e.action, &r.action)
            && eq(&e.src, &r.src)
            && eq(&e.dst, &r.dst)
            && same(&e.iif, &r.iif)
            && same(&e.oif, &r.oif)
            && e.fwmark.is_none_or(|(m, mask)| {
                r.fwmark == Some(m) && mask.is_none_or(|k| r.fwmask == Some(k))
            })
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Route(r) => {
                let mut s = crate::describe::route_short(&r.route());
                // `route_short` leaves the default type out, as `ip route`
                // does; an expectation that names it checks it (a `throw`
                // route put in its place breaks it), so it is said (found
                // by the expect fuzz target).
                if r.rtype.as_deref() == Some("unicast") {
                    s.insert_str(0, "unicast ");
                }
                s.push_str(&format!(" table {}", r.table));
                // Said whenever it is checked, 0 included: without it, the
                // text would read back as any metric (found by the expect
                // fuzz target). `of_route` leaves IPv4's 0 out instead.
                if let Some(m) = r.metric {
                    s.push_str(&format!(" metric {m}"));
                }
                if let Some(p) = &r.protocol {
                    s.push_str(&format!(" proto {p}"));
                }
                if r.family == Some(Family::Inet6) && r.dst == "::/0" {
                    s.insert_str(0, "-6 ");
                }
                write!(f, "{s}")
            }
            Expectation::Rule(r) => {
                let mut rule = r.rule();
                rule.action.get_or_insert_with(|| "table".into());
                let text = describe::rule(&rule);
                // "inet pref 5270 lookup 52" -> "rule 5270 lookup 52"
                let mut rest = text
                    .split_once("pref ")
                    .map_or(text.as_str(), |(_, r)| r)
                    .to_string();
                // A blackhole, unreachable or prohibit rule is described
                // without its table; said when it is checked (found by the
                // expect fuzz target: the text read back as any table).
                if let (Some(t), Some(_)) = (r.table, &r.action) {
                    rest.push_str(&format!(" table {t}"));
                }
                let v6 = if r.family == Some(Family::Inet6) {
                    "-6 "
                } else {
                    ""
                };
                write!(f, "{v6}rule {rest}")
            }
        }
    }
}

#[cfg(test)]
#[path = "expect_tests.rs"]
mod tests;
