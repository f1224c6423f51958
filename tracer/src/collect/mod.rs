//! Collection: records from the ring buffer and notifications from the
//! watched namespaces, delivered to the correlator as one stream.
pub mod holders;
pub mod kernel_event;
pub mod namespaces;
pub mod netns_scan;
pub mod packet;
pub mod packet_decode;
pub mod task;

use crate::netlink::decode::NlItem;

/// One input to the correlator from a namespace reader thread.
/// Batches of notifications the channel to the main loop holds: bounded, so
/// a backlog waits in the kernel rather than in the tracer's memory.
pub const NS_CHANNEL_BATCHES: usize = 64;

pub enum NsInput {
    Notify { netns: u32, items: Vec<NlItem> },
    Overflow { netns: u32 },
    Failed { netns: u32, error: String },
}
