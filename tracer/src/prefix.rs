//! IP prefixes as the event model writes them ("192.168.1.0/24", "::/0",
//! or a bare address for a host), read into `ipnet` networks for
//! containment and overlap. A leaf: the packet path, `explain`, `report`
//! and the guard share it.
use std::net::IpAddr;

use ipnet::IpNet;

/// "192.168.1.0/24", "fd42::/64", or "192.168.1.90" (a host: /32, /128).
/// Host bits beyond the length are kept (see [`is_canonical`]).
pub fn parse(s: &str) -> Option<IpNet> {
    match s.split_once('/') {
        Some(_) => s.parse().ok(),
        None => s.parse::<IpAddr>().ok().map(IpNet::from),
    }
}

/// The length of a prefix ("192.168.1.0/24" -> 24); none for a bare address.
pub fn len(s: &str) -> Option<u8> {
    s.contains('/')
        .then(|| parse(s))
        .flatten()
        .map(|n| n.prefix_len())
}

/// Whether `prefix` covers `addr` (false for another family or a prefix
/// that does not parse).
pub fn covers(prefix: &str, addr: IpAddr) -> bool {
    parse(prefix).is_some_and(|n| n.contains(&addr))
}

/// Whether two prefixes share an address: the shorter covers the other.
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// Whether the address has no bits set beyond the length.
pub fn is_canonical(n: IpNet) -> bool {
    n.trunc() == n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_prefixes_and_hosts() {
        assert_eq!(parse("192.168.1.0/24").unwrap().prefix_len(), 24);
        assert_eq!(parse("192.168.1.90").unwrap().prefix_len(), 32);
        assert_eq!(parse("fd42::1").unwrap().prefix_len(), 128);
        assert_eq!(parse("::/0").unwrap().prefix_len(), 0);
        for bad in [
            "",
            "/24",
            "192.168.1.0/33",
            "fd42::/129",
            "x/8",
            "1.2.3.4/",
            "1.2.3/24",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(len("10.0.0.0/8"), Some(8));
        assert_eq!(len("10.0.0.1"), None);
    }

    #[test]
    fn containment_masks_both_sides() {
        assert!(covers("192.168.1.0/24", ip("192.168.1.90")));
        assert!(covers("192.168.1.5/24", ip("192.168.1.90")));
        assert!(!covers("192.168.1.0/24", ip("192.168.2.1")));
        assert!(covers("0.0.0.0/0", ip("8.8.8.8")));
        assert!(
            !covers("0.0.0.0/0", ip("::1")),
            "families never cover each other"
        );
        assert!(covers("::/0", ip("fd42::1")));
        assert!(covers("fd42:10:10:10::/64", ip("fd42:10:10:10::5")));
        assert!(!covers("fd42:10:10:10::/64", ip("fd42:10:10:11::5")));
        assert!(covers("10.0.0.1", ip("10.0.0.1")));
        assert!(!covers("10.0.0.1", ip("10.0.0.2")));
        assert!(!covers("junk", ip("10.0.0.2")));
    }

    #[test]
    fn overlap_is_symmetric() {
        let a = parse("192.168.0.0/16").unwrap();
        let b = parse("192.168.1.0/24").unwrap();
        let c = parse("10.0.0.0/8").unwrap();
        assert!(overlaps(a, b) && overlaps(b, a));
        assert!(!overlaps(a, c));
        assert!(!overlaps(parse("::/0").unwrap(), c));
    }

    #[test]
    fn canonical_means_no_host_bits() {
        assert!(is_canonical(parse("192.168.1.0/24").unwrap()));
        assert!(!is_canonical(parse("192.168.1.1/24").unwrap()));
        assert!(is_canonical(parse("fd42::/64").unwrap()));
        assert!(!is_canonical(parse("fd42::1/64").unwrap()));
    }
}
