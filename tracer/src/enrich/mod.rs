//! Process, cgroup/unit and network-namespace enrichment from /proc, /sys/fs/cgroup and /run/netns.
