//! rtnetlink: decoding (netlink-packet-route; route messages by hand),
//! names, and the sockets the
//! tracer reads notifications and dumps from.
pub mod decode;
pub mod error;
pub mod names;
pub mod nexthops;
pub mod route_msg;
pub mod rule_msg;
pub mod socket;

#[cfg(test)]
mod forms_tests;
