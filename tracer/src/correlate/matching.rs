//! When a request (or a kernel function's view of one) and a notification
//! describe the same change. A request names only what its sender chose to
//! name ("ip route del 192.168.1.0/24 table 52" gives no type or device);
//! the notification describes the route or rule that really changed.
use super::Object;
use crate::event::{Route, Rule};

/// Fields the request set must equal the notification's.
fn same<T: PartialEq>(req: &Option<T>, note: &Option<T>) -> bool {
    match (req, note) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Whether a route notification can be the outcome of a route request.
pub fn route_matches(req: &Route, note: &Route) -> bool {
    // Requests carry table 0 ("unspec") when they leave it to the kernel,
    // which then uses main.
    let table_ok = match (req.table, note.table) {
        (Some(0), Some(254)) | (None, _) => true,
        (a, b) => a == b,
    };
    let type_ok = matches!(req.rtype.as_deref(), None | Some("unspec")) || req.rtype == note.rtype;
    let proto_ok =
        matches!(req.protocol.as_deref(), None | Some("unspec")) || req.protocol == note.protocol;
    table_ok
        && type_ok
        && proto_ok
        && req.family == note.family
        && same(&req.dst, &note.dst)
        && same(&req.gateway, &note.gateway)
        && same(&req.ifindex, &note.ifindex)
        && same(&req.metric, &note.metric)
}

/// Whether a rule notification can be the outcome of a rule request.
pub fn rule_matches(req: &Rule, note: &Rule) -> bool {
    req.family == note.family
        && same(&req.priority, &note.priority)
        && same(&req.table, &note.table)
        && same(&req.src, &note.src)
        && same(&req.dst, &note.dst)
        && same(&req.fwmark, &note.fwmark)
        && same(&req.iif, &note.iif)
        && same(&req.oif, &note.oif)
        && (req.action.is_none() || req.action == note.action)
}

/// Whether a request and a notification are about the same kind of object
/// that the tracer may read more loosely than the kernel (routes and rules;
/// a nexthop is named by its id, exactly).
pub(super) fn loosely_alike(req: &Object, note: &Object) -> bool {
    std::mem::discriminant(req) == std::mem::discriminant(note)
        && !matches!(req, Object::Nexthop(_))
}

pub(super) fn objects_match(req: &Object, note: &Object) -> bool {
    match (req, note) {
        (Object::Route(a), Object::Route(b)) => route_matches(a, b),
        (Object::Rule(a), Object::Rule(b)) => rule_matches(a, b),
        (Object::Nexthop(a), Object::Nexthop(b)) => a.id == b.id,
        _ => false,
    }
}

/// The notification describes what really changed; keep request-only
/// facts where it is silent.
pub(super) fn merge(req: Object, note: Object) -> Object {
    match (req, note) {
        (Object::Route(r), Object::Route(mut n)) => {
            // A multipath route's next hops are its list; the request's
            // (or one sibling's) single next hop is not the route's.
            if n.nexthops.is_empty() {
                n.dev = n.dev.or(r.dev);
                n.ifindex = n.ifindex.or(r.ifindex);
                n.gateway = n.gateway.or(r.gateway);
            }
            n.nhid = n.nhid.or(r.nhid);
            if n.nexthops.is_empty() {
                n.nexthops = r.nexthops;
            }
            Object::Route(n)
        }
        (Object::Rule(r), Object::Rule(mut n)) => {
            n.iif = n.iif.or(r.iif);
            n.oif = n.oif.or(r.oif);
            Object::Rule(n)
        }
        // A deletion's notification has the whole object; its request only
        // the id.
        (Object::Nexthop(_), n) => n,
        (_, n) => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{correlate::pairing_tests::throw, event::Family};

    #[test]
    fn sparse_delete_request_matches_full_notification() {
        let req = Route {
            family: Some(Family::Inet),
            table: Some(52),
            rtype: Some("unspec".into()),
            dst: Some("192.168.1.0/24".into()),
            protocol: Some("unspec".into()),
            ..Route::default()
        };
        assert!(route_matches(&req, &throw(52)));
        assert!(!route_matches(&req, &throw(53)));
        let other = Route {
            dst: Some("192.168.2.0/24".into()),
            ..req.clone()
        };
        assert!(!route_matches(&other, &throw(52)));
    }

    #[test]
    fn rule_by_priority_matches() {
        let req = Rule {
            family: Some(Family::Inet),
            priority: Some(5270),
            ..Rule::default()
        };
        let note = Rule {
            family: Some(Family::Inet),
            priority: Some(5270),
            table: Some(52),
            action: Some("table".into()),
            ..Rule::default()
        };
        assert!(rule_matches(&req, &note));
        let v6 = Rule {
            family: Some(Family::Inet6),
            ..req
        };
        assert!(!rule_matches(&v6, &note));
    }
}
