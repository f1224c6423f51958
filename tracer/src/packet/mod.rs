//! The packet path: packets and FIB lookups on watched interfaces.
pub mod obs;
