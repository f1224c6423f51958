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
    let c = PacketConfig::resolve_with(&mut r);
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
