//! A source for a packet arriving on an interface when `--from` is not
//! given: an address that really lies behind that interface, from the
//! routes through it. None when nothing says what lies behind it (the
//! caller then asks for `--from`): a guessed source makes the kernel
//! answer another question, or refuse it.
use std::net::IpAddr;

use ipnet::IpNet;

use crate::{event::Route, prefix};

/// The source chosen and why it lies behind `iif`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behind {
    pub addr: IpAddr,
    pub why: String,
}

/// An address behind `iif` of the destination's family, in order of
/// trust: a host route through it, a gateway through it, an address of a
/// connected subnet on it, an address of another route through it. Never
/// one of the host's own addresses (`local` routes).
pub fn behind(routes: &[Route], iif: &str, v6: bool) -> Option<Behind> {
    let own: Vec<IpAddr> = routes
        .iter()
        .filter(|r| r.rtype.as_deref() == Some("local"))
        .filter_map(|r| Some(prefix::parse(r.dst.as_deref()?)?.addr()))
        .collect();
    let usable = |a: &IpAddr| a.is_ipv6() == v6 && !own.contains(a) && !a.is_unspecified();
    let through: Vec<(&Route, IpNet)> = routes
        .iter()
        .filter(|r| r.rtype.as_deref().is_none_or(|t| t == "unicast"))
        .filter(|r| r.dev.as_deref() == Some(iif))
        .filter_map(|r| Some((r, prefix::parse(r.dst.as_deref()?)?)))
        .filter(|(_, n)| n.addr().is_ipv6() == v6 && !is_link_local(n))
        .collect();
    let host = through
        .iter()
        .find(|(_, n)| n.prefix_len() == n.max_prefix_len() && usable(&n.addr()))
        .map(|(_, n)| Behind {
            addr: n.addr(),
            why: format!("the host route {} through {iif}", n.addr()),
        });
    let gateway = || {
        through.iter().find_map(|(r, _)| {
            let gw: IpAddr = r.gateway.as_deref()?.parse().ok()?;
            usable(&gw).then(|| Behind {
                addr: gw,
                why: format!(
                    "the gateway of {} through {iif}",
                    crate::describe::route_short(r)
                ),
            })
        })
    };
    let inside = |connected: bool| {
        through.iter().find_map(|(r, n)| {
            if (r.gateway.is_none() && r.scope.as_deref() == Some("link")) != connected
                || n.prefix_len() == 0
            {
                return None;
            }
            let a = first_host(n, &usable)?;
            let what = if connected {
                "connected subnet"
            } else {
                "route"
            };
            Some(Behind {
                addr: a,
                why: format!("an address in {iif}'s {what} {}", n.trunc()),
            })
        })
    };
    host.or_else(gateway)
        .or_else(|| inside(true))
        .or_else(|| inside(false))
}

fn is_link_local(n: &IpNet) -> bool {
    match n {
        IpNet::V6(n) => n.addr().segments()[0] & 0xffc0 == 0xfe80,
        IpNet::V4(n) => n.addr().octets()[..2] == [169, 254],
    }
}

/// The first address of `n` after its network address that `ok` accepts
/// (a few tried: the first ones are usually the router's own).
fn first_host(n: &IpNet, ok: &dyn Fn(&IpAddr) -> bool) -> Option<IpAddr> {
    let net = n.trunc();
    net.hosts()
        .filter(|a| *a != net.addr())
        .take(16)
        .find(|a| ok(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Family;

    fn route(dst: &str, dev: &str, rtype: &str, scope: &str, gw: Option<&str>) -> Route {
        Route {
            family: Some(if dst.contains(':') {
                Family::Inet6
            } else {
                Family::Inet
            }),
            dst: Some(dst.into()),
            dev: Some(dev.into()),
            rtype: Some(rtype.to_string().into()),
            scope: Some(scope.to_string().into()),
            gateway: gw.map(str::to_string),
            ..Route::default()
        }
    }

    #[test]
    fn a_connected_subnet_gives_an_address_that_is_not_the_hosts_own() {
        let routes = vec![
            route("203.0.114.0/24", "d3", "unicast", "link", None),
            route("203.0.114.1/32", "d3", "local", "host", None),
            route("10.1.0.0/24", "d1", "unicast", "link", None),
        ];
        let b = behind(&routes, "d3", false).unwrap();
        assert_eq!(b.addr.to_string(), "203.0.114.2");
        assert!(
            b.why.contains("connected subnet 203.0.114.0/24"),
            "{}",
            b.why
        );
        assert_eq!(behind(&routes, "d4", false), None);
        assert_eq!(behind(&routes, "d3", true), None);
    }

    #[test]
    fn a_host_route_comes_first_then_a_gateway() {
        let routes = vec![
            route("192.168.1.0/24", "enp1s0", "unicast", "link", None),
            route(
                "10.9.0.0/16",
                "enp1s0",
                "unicast",
                "global",
                Some("192.168.1.254"),
            ),
            route("100.119.140.15/32", "tailscale0", "unicast", "link", None),
            route("0.0.0.0/0", "tailscale0", "unicast", "link", None),
        ];
        assert_eq!(
            behind(&routes, "tailscale0", false)
                .unwrap()
                .addr
                .to_string(),
            "100.119.140.15"
        );
        assert_eq!(
            behind(&routes, "enp1s0", false).unwrap().addr.to_string(),
            "192.168.1.254"
        );
    }
}
