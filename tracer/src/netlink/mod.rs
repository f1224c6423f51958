//! rtnetlink: decoding (netlink-packet-route), names, and the sockets the
//! tracer reads notifications and dumps from.
pub mod decode;
pub mod names;
pub mod socket;
