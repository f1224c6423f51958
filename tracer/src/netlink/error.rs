//! Why one rtnetlink message could not be decoded. The parsers of this
//! crate's own (route messages on the hot path) say exactly what was wrong;
//! errors of netlink-packet-route are kept as its text.
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
    #[error("RTA_MULTIPATH: {0}")]
    Multipath(String),
    /// netlink-packet-route could not decode a link, address or error
    /// message.
    #[error("{0}")]
    Rtnetlink(String),
}
