//! A miniature of "Tailscale subnet route lost after networkd restart"
//! (2026-04-10): tailscaled's policy rules and table 52, a foreign-rule
//! flush, a partial recovery that forgets `throw 192.168.1.0/24`, and a link
//! going down whose routes vanish without any netlink request.

/// The stage, built before the tracer starts. This kernel has no `dummy`
/// driver, so tailscale0 is a TUN device (as it is for real) and enp1s0 is
/// one end of a veth pair (its peer `lan0` stands for the LAN).
pub const PREPARE: &[&str] = &[
    "tuntap add dev tailscale0 mode tun",
    "link set tailscale0 up",
    "link add enp1s0 type veth peer name lan0",
    "addr add 192.168.1.1/24 dev enp1s0",
    "link set lan0 up",
    "link set enp1s0 up",
];

pub struct Step {
    pub narrative: &'static str,
    pub commands: &'static [&'static str],
}

const TAILSCALE_RULES: &[&str] = &[
    "rule add pref 5210 fwmark 0x80000/0xff0000 table main",
    "rule add pref 5230 fwmark 0x80000/0xff0000 table default",
    "rule add pref 5250 fwmark 0x80000/0xff0000 type unreachable",
    "rule add pref 5270 table 52",
];

pub const STEPS: &[Step] = &[
    Step {
        narrative: "a. tailscaled installs its policy: rules 5210-5270 and table 52 (a throw route per advertised subnet, default via tailscale0)",
        commands: &[
            TAILSCALE_RULES[0],
            TAILSCALE_RULES[1],
            TAILSCALE_RULES[2],
            TAILSCALE_RULES[3],
            "route add throw 10.10.10.0/24 table 52",
            "route add throw 192.168.1.0/24 table 52",
            "route add default dev tailscale0 table 52",
        ],
    },
    Step {
        narrative: "b. systemd-networkd restarts and flushes foreign rules; throw 192.168.1.0/24 disappears from table 52 too",
        commands: &[
            "rule del pref 5210",
            "rule del pref 5230",
            "rule del pref 5250",
            "rule del pref 5270",
            "route del throw 192.168.1.0/24 table 52",
        ],
    },
    Step {
        narrative: "c. tailscaled restores its rules (but not the throw route)",
        commands: TAILSCALE_RULES,
    },
    Step {
        narrative: "d. a link goes down: enp1s0's routes vanish without a netlink request (no RTM_DELROUTE, invisible to `ip monitor`)",
        commands: &["link set enp1s0 down"],
    },
];

/// What the user just saw, printed after `demo: done`.
pub fn explanation(netns: &str) -> String {
    format!(
        "demo: What the output shows: each line above from the tracer is one routing change in namespace {netns}, \
         attributed to the process that made it (here `ip`, child of `xtask`; on the incident's server it would have \
         been tailscaled and systemd-networkd). Step a adds tailscaled's four rules and table 52; step b removes the \
         four rules and the `throw 192.168.1.0/24` route, and the tracer names who removed each one, which the \
         incident's investigators could only guess from tailscaled's log (\"somebody (likely systemd-networkd) \
         deleted ip rules\"); step c brings the rules back but nothing re-adds the throw route, which is the partial \
         recovery that left 192.168.1.x unreachable for 5 h 49 min; step d shows routes that vanished because \
         enp1s0 went down (cause link_down), a removal the kernel never announces with RTM_DELROUTE, so `ip monitor` \
         would not have shown it. With the tracer running on the real server, `ip route show table 52` missing a \
         throw route would have come with a line saying when it went and which process took it."
    )
}
