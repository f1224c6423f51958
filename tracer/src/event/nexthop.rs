//! Nexthop objects (`ip nexthop`): the kernel's shared next hops that
//! routes name by id (`nhid N`), single or grouped.
use serde::{Deserialize, Serialize};

use super::{Family, Name};

/// A nexthop object as the kernel reports it (RTM_NEWNEXTHOP), or as far as
/// a request names it (a deletion names only its id).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Nexthop {
    pub id: u32,
    /// The family of its gateway; null for groups and blackholes without one.
    pub family: Option<Family>,
    pub gateway: Option<String>,
    pub dev: Option<String>,
    /// Interface index of `dev` (useful when the device is gone).
    pub ifindex: Option<u32>,
    /// `ip nexthop add id N blackhole`.
    #[serde(default)]
    pub blackhole: bool,
    /// `fdb`: a nexthop for the bridge's forwarding database (VXLAN), which
    /// routes cannot use.
    #[serde(default)]
    pub fdb: bool,
    pub protocol: Option<Name>,
    /// RTNH_F_* names: "dead", "onlink", "linkdown", "offload", "trap".
    #[serde(default)]
    pub flags: Vec<String>,
    /// A group's members with their weights, in the kernel's order; empty
    /// for a single nexthop.
    #[serde(default)]
    pub group: Vec<GroupMember>,
    /// A group's type: "mpath" (hash-threshold) or "resilient".
    pub group_type: Option<String>,
    /// A resilient group's parameters.
    #[serde(default)]
    pub resilient: Option<Resilient>,
}

/// One member of a nexthop group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub id: u32,
    /// As `ip nexthop` shows it: 1 to 256 (65536 on 6.12+).
    pub weight: u32,
}

/// A resilient group's parameters (NHA_RES_GROUP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resilient {
    pub buckets: Option<u16>,
    /// Seconds a bucket may stay idle before it is moved.
    pub idle_timer: Option<u32>,
    /// Seconds the group may stay unbalanced before buckets are forced.
    pub unbalanced_timer: Option<u32>,
    /// Clock ticks (USER_HZ) the group has been unbalanced, in reports.
    pub unbalanced_time: Option<u64>,
}

impl Nexthop {
    /// Names the device given only by interface index.
    pub fn name_dev(&mut self, name: impl Fn(u32) -> Option<String>) {
        if self.dev.is_none() {
            self.dev = self.ifindex.and_then(name);
        }
    }

    /// Whether this is a group.
    pub fn is_group(&self) -> bool {
        !self.group.is_empty()
    }
}
