//! `--pcap FILE`: the packets of detected loops (each original and its
//! looped copies), as a classic pcap file of raw IP packets
//! (LINKTYPE_RAW) that tcpdump and Wireshark open. Packets are cut at the
//! tracer's capture length; each record keeps the packet's real length.
use std::{fs::File, io::Write, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use pcap_file::{
    DataLink,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

/// The pcap file (`--pcap FILE`), or any writer (the fuzz target writes
/// to memory and reads the packets back).
pub struct PcapSink<W: Write = File> {
    writer: PcapWriter<W>,
}

/// The packet's length as its IP header gives it (IPv4 total length,
/// IPv6 payload length + 40), or the captured length if there is no header.
fn ip_len(bytes: &[u8]) -> u32 {
    match bytes.first().map(|b| b >> 4) {
        Some(4) if bytes.len() >= 4 => u32::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        Some(6) if bytes.len() >= 6 => u32::from(u16::from_be_bytes([bytes[4], bytes[5]])) + 40,
        _ => bytes.len() as u32,
    }
}

impl PcapSink {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the pcap file {}", path.display()))?;
        PcapSink::new(file)
            .with_context(|| format!("writing the pcap header to {}", path.display()))
    }
}

impl<W: Write> PcapSink<W> {
    /// Writes the file header (raw IP packets, cut at the capture length).
    pub fn new(out: W) -> Result<Self> {
        let header = PcapHeader {
            datalink: DataLink::RAW,
            snaplen: tracer_common::PKT_SNAP as u32,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(out, header)?;
        Ok(PcapSink { writer })
    }

    /// The writer back, with everything written to it.
    pub fn into_inner(self) -> W {
        self.writer.into_writer()
    }

    /// Writes one packet; `unix_ns` is its wall-clock time.
    pub fn write(&mut self, unix_ns: i128, bytes: &[u8]) -> Result<()> {
        let ts = Duration::from_nanos(unix_ns.max(0) as u64);
        let orig = ip_len(bytes).max(bytes.len() as u32);
        self.writer
            .write_packet(&PcapPacket::new(ts, orig, bytes))
            .context("writing to the pcap file")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn writes_a_readable_file() {
        let dir = std::env::temp_dir().join(format!("tracer-pcap-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("t.pcap");
        let mut pkt = vec![0x45, 0, 0, 84];
        pkt.resize(60, 0);
        {
            let mut s = PcapSink::create(&path).unwrap();
            s.write(1_700_000_000_000_000_000, &pkt).unwrap();
        }
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::RAW);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.orig_len, 84);
        assert_eq!(p.data.len(), 60);
        assert_eq!(p.timestamp.as_secs(), 1_700_000_000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
