//! When two events are about the same route, as the kernel keys its
//! routes: family, table, destination, metric and type (the next hop and
//! `protocol` may differ), and, where the kernel keeps one route per
//! device, its device: IPv6 routes (fib6 keeps a route per next hop:
//! device and gateway) and the IPv4 routes the kernel makes for an
//! interface (`proto kernel`, appended one per interface). A device is
//! known by its index when the event gives one (a name can be reused by a
//! new interface). `report` (what is still missing) and the metrics
//! (`tracer_routes_missing`) both match routes this way.
use super::{Cause, Change, Family, Route};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    family: Option<Family>,
    table: Option<u32>,
    /// `0.0.0.0/0` or `::/0` when the event has none.
    dst: Option<String>,
    /// 0 when the event has none (IPv4's default priority).
    metric: u32,
    /// `unicast` when the event has none.
    rtype: String,
    /// Where the kernel keeps one route per next hop: its device and
    /// gateway (see [`by_device`]); else None.
    nexthop: Option<(Option<Dev>, Option<String>)>,
}

impl RouteId {
    pub fn of(r: &Route) -> RouteId {
        RouteId {
            family: r.family,
            table: r.table,
            dst: r
                .dst
                .clone()
                .or_else(|| r.family.map(|f| f.any().to_string())),
            metric: r.metric.unwrap_or(0),
            rtype: r.rtype.as_deref().unwrap_or("unicast").to_string(),
            nexthop: nexthop(r),
        }
    }
}

/// A device: by index when known, else by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Dev {
    Index(u32),
    Name(String),
}

/// Whether the kernel tells this route from others of the same
/// destination and metric by its next hop: every IPv6 route, and IPv4
/// routes of `proto kernel` (the kernel adds an interface's routes with
/// NLM_F_APPEND, so two interfaces may each hold one for a prefix).
fn by_device(r: &Route) -> bool {
    match r.family {
        Some(Family::Inet6) => true,
        _ => r.protocol.as_deref() == Some("kernel"),
    }
}

fn nexthop(r: &Route) -> Option<(Option<Dev>, Option<String>)> {
    if !by_device(r) {
        return None;
    }
    let dev = match (r.ifindex, &r.dev) {
        (Some(i), _) => Some(Dev::Index(i)),
        (None, Some(n)) => Some(Dev::Name(n.clone())),
        _ => None,
    };
    let gateway = match r.family {
        Some(Family::Inet6) => r.gateway.clone(),
        _ => None,
    };
    Some((dev, gateway))
}

impl Change {
    /// Whether the change took effect (`ok`, or not known to have failed).
    pub fn applied(&self) -> bool {
        self.result.as_deref().is_none_or(|r| r == "ok")
    }

    /// Whether a removal went with its interface (`ip link del`): the
    /// object is gone with the device, not missing.
    pub fn gone_with_interface(&self) -> bool {
        self.cause == Some(Cause::LinkDel)
    }
}
