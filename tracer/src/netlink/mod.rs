//! rtnetlink: decoding (netlink-packet-route; route and nexthop messages
//! by hand), names, the sockets the tracer reads notifications and dumps
//! from, and the requests of the guard's repairs (`request`, `apply`).
pub mod apply;
pub mod decode;
pub mod error;
pub mod names;
pub mod nexthop_msg;
pub mod nexthops;
pub mod request;
pub mod route_msg;
pub mod rule_msg;
pub mod socket;

#[cfg(test)]
pub(crate) mod forms_tests;
