//! Fills [`tracer_common::PacketConfig`] (the packet-path programs' offsets)
//! from the running kernel's BTF and tracefs.
use tracer_common::PacketConfig;

use super::{btf::Btf, offsets::Resolver, tracefs::Tracefs};

/// Resolves every offset in [`PacketConfig`]; what cannot be resolved stays
/// [`tracer_common::NO_OFFSET`] and is explained by one warning per field.
pub fn resolve_packet(btf: &Btf, tracefs: &Tracefs) -> (PacketConfig, Vec<String>) {
    let mut r = Resolver {
        btf,
        tracefs,
        warnings: Vec::new(),
    };
    let mut c = PacketConfig::unresolved();
    c.skb_dev = r.member("sk_buff", "dev");
    c.skb_head = r.member("sk_buff", "head");
    c.skb_data = r.member("sk_buff", "data");
    c.skb_len = r.member("sk_buff", "len");
    c.skb_network_header = r.member("sk_buff", "network_header");
    c.skb_protocol = r.member("sk_buff", "protocol");
    c.skb_mark = r.member("sk_buff", "mark");
    c.dev_ifindex = r.member("net_device", "ifindex");
    c.dev_net = r.member("net_device", "nd_net.net");
    c.net_inum = r.net_inum();

    c.tp_rx_skb = r.tp_field("net", "netif_receive_skb", "skbaddr");
    c.tp_tx_skb = r.tp_field("net", "net_dev_queue", "skbaddr");

    let (cat, ev) = ("fib", "fib_table_lookup");
    c.tp4_table = r.tp_field(cat, ev, "tb_id");
    c.tp4_err = r.tp_field(cat, ev, "err");
    c.tp4_oif = r.tp_field(cat, ev, "oif");
    c.tp4_iif = r.tp_field(cat, ev, "iif");
    c.tp4_proto = r.tp_field(cat, ev, "proto");
    c.tp4_src = r.tp_field(cat, ev, "src");
    c.tp4_dst = r.tp_field(cat, ev, "dst");
    c.tp4_sport = r.tp_field(cat, ev, "sport");
    c.tp4_dport = r.tp_field(cat, ev, "dport");
    c.tp4_dev = r.tp_field(cat, ev, "name");

    let (cat, ev) = ("fib6", "fib6_table_lookup");
    c.tp6_table = r.tp_field(cat, ev, "tb_id");
    c.tp6_err = r.tp_field(cat, ev, "err");
    c.tp6_oif = r.tp_field(cat, ev, "oif");
    c.tp6_iif = r.tp_field(cat, ev, "iif");
    c.tp6_proto = r.tp_field(cat, ev, "proto");
    c.tp6_src = r.tp_field(cat, ev, "src");
    c.tp6_dst = r.tp_field(cat, ev, "dst");
    c.tp6_sport = r.tp_field(cat, ev, "sport");
    c.tp6_dport = r.tp_field(cat, ev, "dport");
    c.tp6_dev = r.tp_field(cat, ev, "name");
    (c, r.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::NO_OFFSET;

    /// On the machine running the tests, every packet offset resolves (the
    /// packet path is tested on this kernel).
    #[test]
    fn resolves_on_this_kernel() {
        let (Ok(btf), Ok(tracefs)) = (Btf::vmlinux(), Tracefs::locate()) else {
            panic!("this test needs /sys/kernel/btf/vmlinux and tracefs");
        };
        let (c, warnings) = resolve_packet(&btf, &tracefs);
        assert!(warnings.is_empty(), "unresolved: {warnings:?}");
        assert_ne!(c.skb_network_header, NO_OFFSET);
        assert_ne!(c.tp6_dev, NO_OFFSET);
    }
}
