//! Why one rtnetlink message could not be decoded. The parsers of this
//! crate's own (route messages on the hot path; nexthop messages) say
//! exactly what was wrong; errors of netlink-packet-route are kept as its
//! text.
/// One message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    #[error("the message's length {0} is shorter than a netlink header")]
    ShortHeader(usize),
    #[error("route message of {0} bytes is shorter than rtmsg")]
    ShortRoute(usize),
    #[error("route attribute at byte {offset} claims {len} bytes ({left} left)")]
    RouteAttribute {
        offset: usize,
        len: usize,
        left: usize,
    },
    #[error("rule header: {0}")]
    RuleHeader(String),
    #[error("nexthop message of {0} bytes is shorter than nhmsg")]
    ShortNexthop(usize),
    #[error(
        "nexthop attribute at byte {offset} of its attributes claims {len} bytes ({left} left)"
    )]
    NexthopAttributeBounds {
        offset: usize,
        len: usize,
        left: usize,
    },
    #[error("nexthop attribute {attr} has {len} bytes, not {want}")]
    NexthopAttribute {
        attr: &'static str,
        len: usize,
        want: usize,
    },
    #[error("NHA_GROUP of {0} bytes is not a whole number of 8-byte entries")]
    NexthopGroup(usize),
    #[error("NHA_GATEWAY of {len} bytes does not fit address family {family}")]
    NexthopGateway { family: u8, len: usize },
    #[error("nexthop message without NHA_ID")]
    NexthopNoId,
    #[error("RTA_MULTIPATH: {0}")]
    Multipath(String),
    /// netlink-packet-route could not decode a link, address or error
    /// message.
    #[error("{0}")]
    Rtnetlink(String),
}
