//! Names for rtnetlink numbers, as `ip` prints them: route types, protocols,
//! scopes, rule actions, and table names from the iproute2 configuration.
use std::collections::HashMap;

use crate::event::Name;

/// RTN_* route types.
const ROUTE_TYPES: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "unicast"),
    (2, "local"),
    (3, "broadcast"),
    (4, "anycast"),
    (5, "multicast"),
    (6, "blackhole"),
    (7, "unreachable"),
    (8, "prohibit"),
    (9, "throw"),
    (10, "nat"),
    (11, "xresolve"),
];

/// RTPROT_* (iproute2's rt_protos).
const PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (17, "mrouted"),
    (18, "keepalived"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// RT_SCOPE_*.
const SCOPES: &[(u8, &str)] = &[
    (0, "global"),
    (200, "site"),
    (253, "link"),
    (254, "host"),
    (255, "nowhere"),
];

/// The name of `n` in `table`, else the number.
fn name_of(table: &'static [(u8, &'static str)], n: u8) -> Name {
    match table.iter().find(|(k, _)| *k == n) {
        Some((_, name)) => Name::Borrowed(name),
        None => Name::Owned(n.to_string()),
    }
}

/// The number a name (or a number, for unnamed values) stands for.
fn number_of(table: &[(u8, &str)], name: &str) -> Option<u8> {
    table
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(k, _)| *k)
        .or_else(|| name.parse().ok())
}

/// RTN_* route type name.
pub fn route_type(t: u8) -> Name {
    name_of(ROUTE_TYPES, t)
}

/// RTN_* number of a route type name (the inverse of `route_type`).
pub fn route_type_number(name: &str) -> Option<u8> {
    number_of(ROUTE_TYPES, name)
}

/// RTPROT_* name (iproute2's rt_protos).
pub fn protocol(p: u8) -> Name {
    name_of(PROTOCOLS, p)
}

/// RTPROT_* number of a protocol name (the inverse of `protocol`).
pub fn protocol_number(name: &str) -> Option<u8> {
    number_of(PROTOCOLS, name)
}

/// RT_SCOPE_* name.
pub fn scope(s: u8) -> Name {
    name_of(SCOPES, s)
}

/// RT_SCOPE_* number of a scope name (the inverse of `scope`).
pub fn scope_number(name: &str) -> Option<u8> {
    number_of(SCOPES, name)
}

/// FR_ACT_* rule action name.
pub fn rule_action(a: u8) -> Option<String> {
    Some(
        match a {
            0 => return None,
            1 => "table",
            2 => "goto",
            3 => "nop",
            6 => "blackhole",
            7 => "unreachable",
            8 => "prohibit",
            other => return Some(other.to_string()),
        }
        .to_string(),
    )
}

/// Kernel error name for a negative errno ("ESRCH"), as the JSON contract
/// reports results.
pub fn errno_name(err: i32) -> crate::event::Name {
    if err == 0 {
        return "ok".into();
    }
    let e = err.unsigned_abs() as i32;
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENOBUFS => "ENOBUFS",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        _ => return format!("E{e}").into(),
    };
    name.into()
}

/// Routing table names from iproute2's configuration (`rt_tables` and its
/// `.d` directories, in /etc/iproute2 and /usr/share/iproute2), plus the
/// kernel's reserved ids.
#[derive(Clone, Debug, Default)]
pub struct TableNames {
    names: HashMap<u32, String>,
}

impl TableNames {
    pub fn load() -> Self {
        let mut t = TableNames::default();
        for (id, name) in [(253, "default"), (254, "main"), (255, "local")] {
            t.names.insert(id, name.to_string());
        }
        for dir in ["/usr/share/iproute2", "/usr/lib/iproute2", "/etc/iproute2"] {
            t.read_file(&format!("{dir}/rt_tables"));
            if let Ok(rd) = std::fs::read_dir(format!("{dir}/rt_tables.d")) {
                let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
                files.sort();
                for f in files
                    .iter()
                    .filter(|f| f.extension().is_some_and(|e| e == "conf"))
                {
                    t.read_file(&f.to_string_lossy());
                }
            }
        }
        t
    }

    fn read_file(&mut self, path: &str) {
        if let Ok(text) = std::fs::read_to_string(path) {
            self.merge(&text);
        }
    }

    /// Merge `id name` lines (comments and junk ignored).
    pub fn merge(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut it = line.split_whitespace();
            if let (Some(id), Some(name)) = (it.next(), it.next()) {
                let id = if let Some(hex) = id.strip_prefix("0x") {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    id.parse().ok()
                };
                if let Some(id) = id {
                    self.names.insert(id, name.to_string());
                }
            }
        }
    }

    pub fn name(&self, id: u32) -> Option<String> {
        self.names.get(&id).cloned()
    }

    /// Table id for a name or number given on the command line.
    /// Why `s` is not a table: out of range, or unknown.
    pub fn why_not(&self, s: &str) -> String {
        if s.parse::<u128>().is_ok() {
            format!("{s:?}: out of range (table ids are 0 to {})", u32::MAX)
        } else {
            format!("{s:?}: not a number or a name in rt_tables")
        }
    }

    pub fn parse(&self, s: &str) -> Option<u32> {
        s.parse().ok().or_else(|| {
            self.names
                .iter()
                .find(|(_, n)| n.as_str() == s)
                .map(|(id, _)| *id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_iproute2() {
        assert_eq!(route_type(9), "throw");
        assert_eq!(route_type(1), "unicast");
        assert_eq!(route_type(200), "200");
        assert_eq!(protocol(3), "boot");
        assert_eq!(protocol(4), "static");
        assert_eq!(scope(253), "link");
        for n in 0..=255u8 {
            assert_eq!(route_type_number(&route_type(n)), Some(n));
            assert_eq!(protocol_number(&protocol(n)), Some(n));
            assert_eq!(scope_number(&scope(n)), Some(n));
        }
        assert_eq!(rule_action(1).as_deref(), Some("table"));
        assert_eq!(rule_action(0), None);
        assert_eq!(errno_name(-3), "ESRCH");
        assert_eq!(errno_name(0), "ok");
        assert_eq!(errno_name(-17), "EEXIST");
    }

    #[test]
    fn table_names_parse_files() {
        let mut t = TableNames::default();
        t.merge("# comment\n52 tailscale\n0x10 sixteen\n  bogus\n254 main # trailing\n");
        assert_eq!(t.name(52).as_deref(), Some("tailscale"));
        assert_eq!(t.name(16).as_deref(), Some("sixteen"));
        assert_eq!(t.parse("tailscale"), Some(52));
        assert_eq!(t.parse("52"), Some(52));
        assert_eq!(t.parse("nope"), None);
    }
}
