//! The packet path: packets and FIB lookups on watched interfaces, turned
//! into observations for the loop detector, and loops tied to their cause.
pub mod arming;
pub mod cause;
pub mod expiry;
pub mod path;
pub mod suspect;
#[cfg(test)]
mod suspect_tests;
pub mod watchlist;
