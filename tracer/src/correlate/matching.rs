//! When a request (or a kernel function's view of one) and a notification
//! describe the same change. A request names only what its sender chose to
//! name ("ip route del 192.168.1.0/24 table 52" gives no type or device);
//! the notification describes the route or rule that really changed.
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
