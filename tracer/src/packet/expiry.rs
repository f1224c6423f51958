//! The ICMP time-exceeded counters of a watched interface's namespace: a
//! packet that loops through the router until its TTL (hop limit) runs out
//! makes the router send an ICMP "time exceeded", counted in
//! `/proc/net/snmp` (`Icmp: OutTimeExcds`) and `/proc/net/snmp6`
//! (`Icmp6OutTimeExcds`). On demand (`arming`), their growth arms the tc
//! programs at once, so a loop with no change behind it is caught from its
//! next packet rather than from the next sampling window that one of its
//! packets happens to fall in (a 1-packet-per-second flow would be missed
//! by nine windows in ten). Reading them costs no packet anything.
//!
//! The files are opened from inside the namespace (a `/proc/net` file
//! stays bound to the namespace it was opened in) and read again from the
//! start at most every [`READ_EVERY_NS`]. procfs parses them.
use std::{
    fs::File,
    io::{BufReader, Seek, SeekFrom},
};

use anyhow::{Context as _, Result};
use procfs::{
    FromBufRead,
    net::{Snmp, Snmp6},
};

use crate::{iface::IfaceSpec, nsfs::in_netns};

/// The least time between two reads (monotonic ns).
pub const READ_EVERY_NS: u64 = 100_000_000;

/// One namespace's counters.
pub struct Expiries {
    snmp: File,
    /// None where IPv6 is disabled (no /proc/net/snmp6).
    snmp6: Option<File>,
    /// Their sum at the last read.
    last: u64,
    /// When they were last read (monotonic ns).
    read_at: u64,
}

impl Expiries {
    /// Opens the counters of `spec`'s namespace and reads them once.
    pub fn open(spec: &IfaceSpec) -> Result<Expiries> {
        let ns = spec
            .netns_path()
            .map(File::open)
            .transpose()
            .context("opening its network namespace")?;
        let (snmp, snmp6) = in_netns(ns.as_ref(), || {
            let snmp = File::open("/proc/thread-self/net/snmp")
                .context("opening /proc/net/snmp in its namespace")?;
            Ok((snmp, File::open("/proc/thread-self/net/snmp6").ok()))
        })?;
        let mut e = Expiries {
            snmp,
            snmp6,
            last: 0,
            read_at: 0,
        };
        e.last = e.read()?;
        Ok(e)
    }

    /// The namespace's time-exceeded messages sent so far, IPv4 and IPv6.
    fn read(&mut self) -> Result<u64> {
        self.snmp.seek(SeekFrom::Start(0))?;
        let v4 = Snmp::from_buf_read(BufReader::new(&self.snmp))
            .context("reading /proc/net/snmp")?
            .icmp_out_time_excds;
        let v6 = match &mut self.snmp6 {
            Some(f) => {
                f.seek(SeekFrom::Start(0))?;
                Snmp6::from_buf_read(BufReader::new(&*f))
                    .context("reading /proc/net/snmp6")?
                    .icmp_out_time_excds
            }
            None => 0,
        };
        Ok(v4.wrapping_add(v6))
    }

    /// Whether the namespace sent a time-exceeded message since the last
    /// read; reads at most every [`READ_EVERY_NS`] (else says no).
    pub fn grew(&mut self, now_ns: u64) -> Result<bool> {
        if now_ns < self.read_at.saturating_add(READ_EVERY_NS) {
            return Ok(false);
        }
        self.read_at = now_ns;
        let now = self.read()?;
        let grew = now != self.last;
        self.last = now;
        Ok(grew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This kernel's files parse (procfs expects every field it knows),
    /// and the counters of the tracer's own namespace read as they are.
    #[test]
    fn the_running_kernels_counters_are_read() {
        let own = IfaceSpec {
            netns: None,
            name: "lo".into(),
        };
        let mut e = Expiries::open(&own).expect("counters of this kernel");
        let expected = procfs::net::snmp().unwrap().icmp_out_time_excds
            + procfs::net::snmp6().map_or(0, |s| s.icmp_out_time_excds);
        assert!(e.last <= expected, "{} > {expected}", e.last);
        // Not read again within READ_EVERY_NS of the last read.
        assert!(e.grew(READ_EVERY_NS).is_ok());
        assert!(!e.grew(2 * READ_EVERY_NS - 1).unwrap());
        assert!(e.grew(2 * READ_EVERY_NS).is_ok());
    }
}
