//! Rule messages (RTM_NEWRULE/RTM_DELRULE) decoded the way the kernel reads
//! them: the header with netlink-packet-route, then each attribute on its
//! own, so that one attribute the library refuses does not lose the rule.
//!
//! Real clients send forms the library does not accept as a whole message.
//! `ip rule add pref 5270 from all lookup 52` carries a zero-length
//! FRA_SRC (iproute2's "all" has no bytes when the family is not given),
//! which netlink-packet-route rejects as an invalid address. The kernel
//! (`fib_nl2rule`) reads FRA_SRC and FRA_DST only when the header's
//! `src_len`/`dst_len` is non-zero, and so does this decoder: with a zero
//! length, the attribute means "all" whatever its size, and the rule has no
//! `src`/`dst`, as in the kernel's own notification.
use super::error::MsgError;
use netlink_packet_core::{NlasIterator, Parseable};
use netlink_packet_route::rule::{RuleAttribute, RuleHeader, RuleMessage};

/// FRA_DST and FRA_SRC (uapi fib_rules.h).
const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
/// The length of `struct fib_rule_hdr`.
const RULE_HEADER_LEN: usize = 12;

/// A rule message and what of it could not be decoded.
#[derive(Debug)]
pub struct Decoded {
    pub msg: RuleMessage,
    /// Attributes skipped because they could not be decoded, as
    /// "attribute N: reason"; the rule is still reported without them.
    pub skipped: Vec<String>,
}

/// Decode the payload of a rule message (what follows the netlink header).
pub fn parse(payload: &[u8]) -> Result<Decoded, MsgError> {
    let header = RuleHeader::parse(payload).map_err(|e| MsgError::RuleHeader(e.to_string()))?;
    let mut msg = RuleMessage::default();
    let mut skipped = Vec::new();
    let attrs = payload.get(RULE_HEADER_LEN..).unwrap_or_default();
    for nla in NlasIterator::new(attrs) {
        let nla = match nla {
            Ok(n) => n,
            Err(e) => {
                skipped.push(format!("attributes after byte {RULE_HEADER_LEN}: {e}"));
                break;
            }
        };
        let kind = nla.kind();
        // The kernel ignores the address when its prefix length is zero.
        if (kind == FRA_SRC && header.src_len == 0) || (kind == FRA_DST && header.dst_len == 0) {
            continue;
        }
        match RuleAttribute::parse(&nla) {
            Ok(a) => msg.attributes.push(a),
            Err(e) => skipped.push(format!("attribute {kind}: {e}")),
        }
    }
    msg.header = header;
    Ok(Decoded { msg, skipped })
}
