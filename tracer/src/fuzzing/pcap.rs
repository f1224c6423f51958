//! `pcap`: a packet as the packet path captured it (`collect::packet_decode`),
//! written as `--pcap` writes it (`output::pcap`), read back with
//! pcap-file and fed through the packet decoder again: the file holds the
//! bytes the observation kept, with the packet's real length, and they
//! decode to the same observation.
use pcap_file::{DataLink, TsResolution, pcap::PcapReader};
use tracer_common::{PKT_SNAP, dir};

use crate::{
    collect::{packet::PacketObs, packet_decode},
    output::pcap::PcapSink,
};

/// A wall-clock time with nanoseconds, of which the file keeps microseconds.
const UNIX_NS: i128 = 1_775_803_966_130_211_789;

fn decode(bytes: &[u8]) -> Option<PacketObs> {
    packet_decode::packet(&packet_decode::capture_of(bytes, dir::RX), "tailscale0").ok()
}

pub fn pcap(data: &[u8]) {
    let Some(obs) = decode(data) else {
        return;
    };
    let mut sink = PcapSink::new(Vec::new()).expect("writing to memory");
    sink.write(UNIX_NS, &obs.bytes).expect("writing to memory");
    let file = sink.into_inner();

    // Read raw: pcap-file's checked reader refuses a packet longer than
    // the snap length, which is what a capture cut at it is (tcpdump and
    // Wireshark read it).
    let mut reader = PcapReader::new(file.as_slice()).expect("our own pcap header");
    assert_eq!(reader.header().datalink, DataLink::RAW);
    assert_eq!(reader.header().snaplen, PKT_SNAP as u32);
    assert_eq!(reader.header().ts_resolution, TsResolution::MicroSecond);
    let packet = reader
        .next_raw_packet()
        .expect("one packet")
        .expect("our own packet record")
        .into_owned();
    assert!(reader.next_raw_packet().is_none(), "one packet only");
    assert_eq!(&packet.data[..], &obs.bytes[..]);
    assert_eq!(packet.incl_len as usize, obs.bytes.len());
    assert!(packet.incl_len <= PKT_SNAP as u32);
    assert_eq!(packet.orig_len, obs.len.max(obs.bytes.len() as u32));
    let micros = UNIX_NS / 1000;
    assert_eq!(
        i128::from(packet.ts_sec) * 1_000_000 + i128::from(packet.ts_frac),
        micros
    );

    let again = decode(&packet.data)
        .unwrap_or_else(|| panic!("the pcap's packet {:02x?} does not decode", packet.data));
    assert_eq!(again, obs, "from the pcap's {:02x?}", packet.data);
}
