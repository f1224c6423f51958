#!/bin/sh
# The attribution scenario, run on this kernel (tests/watch.rs) and inside
# QEMU (tests/qemu.rs) while `tracer watch --json` records it.
#   $1: network namespace name (exists, empty)
#   $2: path of the nlraw helper (raw netlink with sendto)
#   $3: path of iproute2's ip
# Every step's expected event is asserted by tests/common/scenario.rs.
set -eu
NS=$1
NLRAW=$2
IP=${3:-ip}
$IP -n "$NS" link add v0 type veth peer name v1
$IP -n "$NS" link set v0 up
$IP -n "$NS" link set v1 up
$IP -n "$NS" addr add 192.168.1.1/24 dev v0
$IP -n "$NS" -6 addr add 2001:db8:1::1/64 dev v0 nodad
# Tailscale-like policy: rules 5210/5270 and table 52.
$IP -n "$NS" route add throw 192.168.1.0/24 table 52
$IP -n "$NS" route add default dev v0 table 52
$IP -n "$NS" rule add pref 5210 fwmark 0x80000/0xff0000 table main
$IP -n "$NS" rule add pref 5270 table 52
$IP -n "$NS" -6 route add 2001:db8:2::/64 dev v0 table 100
# The incident: the throw route and rule 5270 go away.
$IP -n "$NS" route del throw 192.168.1.0/24 table 52
$IP -n "$NS" rule del pref 5270
$IP -n "$NS" -6 route del 2001:db8:2::/64 table 100
# A failing request: no such route.
$IP -n "$NS" route del 10.9.9.0/24 table 52 2>/dev/null && exit 1
# A program using sendto(2) on a raw netlink socket.
$IP netns exec "$NS" "$NLRAW" route-add 52 10.20.0.0/16 blackhole
$IP netns exec "$NS" "$NLRAW" route-del 52 10.20.0.0/16
$IP netns exec "$NS" "$NLRAW" rule-add 6000 52
$IP netns exec "$NS" "$NLRAW" rule-del 6000 52
# Request forms operators copy from `ip rule show` and daemons send:
# "from all" (a zero-length FRA_SRC), a delete naming no priority, IPv6.
$IP -n "$NS" rule add pref 5271 from all lookup 52
$IP -n "$NS" rule add pref 3007 from all fwmark 0x80000/0xff0000 lookup main
$IP -n "$NS" -6 rule add pref 3008 from all lookup 52
$IP -n "$NS" rule del pref 5271 from all lookup 52
$IP -n "$NS" rule del from all fwmark 0x80000/0xff0000 lookup main
$IP -n "$NS" -6 rule del pref 3008 from all lookup 52
# Replacements (NLM_F_REPLACE) and a multipath route.
$IP -n "$NS" route add blackhole 10.66.0.0/16
$IP -n "$NS" route change 10.66.0.0/16 via 192.168.1.9
$IP -n "$NS" route add 10.9.0.0/16 via 192.168.1.2 table 52
$IP -n "$NS" route replace 10.9.0.0/16 via 192.168.1.3 table 52
$IP -n "$NS" route add 10.5.0.0/24 nexthop via 192.168.1.2 weight 1 nexthop via 192.168.1.3 weight 2
$IP -n "$NS" -6 route add 2001:db8:5::/64 nexthop via 2001:db8:1::2 weight 1 nexthop via 2001:db8:1::3 weight 2
$IP -n "$NS" -6 route del 2001:db8:5::/64
# Nexthop objects, as FRR installs routes: single IPv4 and IPv6 nexthops, a
# weighted group, routes through each. Replacing one reroutes the group's
# route; deleting them takes their routes (the IPv4 ones without any
# notification) and the group with its last member.
$IP -n "$NS" nexthop add id 10 via 192.168.1.2 dev v0
$IP -n "$NS" nexthop add id 11 via 2001:db8:1::2 dev v0
$IP -n "$NS" nexthop add id 12 via 192.168.1.3 dev v0
$IP -n "$NS" nexthop add id 20 group 10/12,3
$IP -n "$NS" route add 198.51.100.0/24 nhid 10 table 100
$IP -n "$NS" route add 198.51.101.0/24 nhid 10
$IP -n "$NS" -6 route add 2001:db8:77::/64 nhid 11 table 100
$IP -n "$NS" route add 203.0.113.0/24 nhid 20
$IP -n "$NS" nexthop replace id 12 via 192.168.1.4 dev v0
$IP -n "$NS" nexthop del id 10
$IP -n "$NS" nexthop del id 11
$IP -n "$NS" nexthop del id 12
# Routes that vanish without a request: link down.
$IP -n "$NS" link set v0 down
echo scenario-done
