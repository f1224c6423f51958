//! The fuzz targets' bodies: one function per parser of outside bytes,
//! each decoding its input and asserting more than "no panic" where the
//! code has an encoder (a round trip: what was decoded, encoded again and
//! decoded, is what was decoded first).
//!
//! `tracer/fuzz/fuzz_targets/<name>.rs` calls `<name>` under libFuzzer
//! (`cargo xtask fuzz`); `corpus_tests` replays the committed corpora
//! (`tracer/fuzz/corpus/<name>/`) and the crashes once found
//! (`tracer/fuzz/regressions/<name>/`) through the same functions on the
//! stable toolchain, as unit tests.
//!
//! A failed assertion here is a bug in the parser it names (or in its
//! encoder), never in the input: every input must either be refused with
//! a typed error or decode to something that survives the round trip.
mod journal;
mod netlink;
mod pcap;
mod ring;
mod text;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod seeds_tests;

pub use journal::journal;
pub use netlink::{netlink, nexthop_msg, route_msg};
pub use pcap::pcap;
pub use ring::ring_record;
pub use text::{expect, iface, time};

/// A target's body: the input is any bytes.
pub type Target = fn(&[u8]);

/// Every target, by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("ring_record", ring_record),
    ("netlink", netlink),
    ("route_msg", route_msg),
    ("nexthop_msg", nexthop_msg),
    ("journal", journal),
    ("expect", expect),
    ("time", time),
    ("iface", iface),
    ("pcap", pcap),
];
