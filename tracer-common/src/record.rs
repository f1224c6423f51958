//! Each ring-buffer record type tied to its kind, and the layout both sides
//! rely on, checked when the crate compiles (for the eBPF target and for
//! userspace alike).
use core::mem::{offset_of, size_of};

use crate::{
    EventHeader, ExecEvent, FibLookupEvent, FlushEvent, NlAckEvent, NlMsgEvent, PKT_SNAP,
    PacketEvent, RouteEvent, RuleMsgEvent, UmountEvent, kind,
};

/// A record that crosses the ring buffer.
///
/// # Safety
/// The type is `#[repr(C)]` (or transparent over such a type), starts with
/// an [`EventHeader`], holds only integers and arrays of them (every bit
/// pattern is valid), and is written with `KIND` in its header.
pub unsafe trait Record: Copy {
    /// Its [`kind`] number.
    const KIND: u16;
    /// Its size, as the header's `len` says it.
    const SIZE: u32 = size_of::<Self>() as u32;
}

// SAFETY: each is a #[repr(C)] struct of integers whose first member is
// its EventHeader (RuleMsgEvent is transparent over NlMsgEvent).
unsafe impl Record for NlMsgEvent {
    const KIND: u16 = kind::NL_REQUEST;
}
unsafe impl Record for RuleMsgEvent {
    const KIND: u16 = kind::RULE;
}
unsafe impl Record for NlAckEvent {
    const KIND: u16 = kind::NL_ACK;
}
unsafe impl Record for RouteEvent {
    const KIND: u16 = kind::ROUTE;
}
unsafe impl Record for FlushEvent {
    const KIND: u16 = kind::FLUSH;
}
unsafe impl Record for ExecEvent {
    const KIND: u16 = kind::EXEC;
}
unsafe impl Record for PacketEvent {
    const KIND: u16 = kind::PACKET;
}
unsafe impl Record for FibLookupEvent {
    const KIND: u16 = kind::FIB_LOOKUP;
}
unsafe impl Record for UmountEvent {
    const KIND: u16 = kind::UMOUNT;
}

// The layout, checked at compile time: a change here changes the contract
// between the two sides (and the ring buffer's 8-byte alignment).
const _: () = {
    assert!(size_of::<EventHeader>() == 80);
    assert!(offset_of!(NlMsgEvent, hdr) == 0);
    assert!(offset_of!(NlMsgEvent, data) == 96);
    assert!(size_of::<RuleMsgEvent>() == size_of::<NlMsgEvent>());
    assert!(size_of::<NlAckEvent>() == 80 + 16);
    assert!(size_of::<RouteEvent>() == 80 + 64);
    assert!(size_of::<FlushEvent>() == 96);
    assert!(size_of::<PacketEvent>() == 104 + PKT_SNAP);
    assert!(size_of::<FibLookupEvent>() == 152);
    assert!(offset_of!(UmountEvent, path) == 88);
    assert!(size_of::<UmountEvent>() == 88 + crate::PATH_MAX_COPY);
    assert!(size_of::<crate::Config>().is_multiple_of(4));
    assert!(size_of::<crate::PacketConfig>().is_multiple_of(4));
};
