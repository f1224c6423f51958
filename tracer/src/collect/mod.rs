//! Collection: records from the ring buffer and notifications from the
//! watched namespaces, delivered to the correlator as one stream.
pub mod namespaces;
pub mod record;

use crate::netlink::decode::NlItem;

/// One input to the correlator from a namespace reader thread.
pub enum NsInput {
    Notify { netns: u32, items: Vec<NlItem> },
    Overflow { netns: u32 },
    Failed { netns: u32, error: String },
}
