#!/bin/bash
# The subnet-router lab: a miniature of the Tailscale incident of 2026-04-10
# (a networkd flush took `throw 192.168.1.0/24` out of table 52, tailscaled
# restored only its rules, and tailnet traffic for the LAN looped back out
# of tailscale0). Shared by `cargo xtask lab` and tests/lab.rs.
#
#   lab.sh up ROUTER_NS LAN_NS [--ipv6]
#                                  build the healthy router (fails if either
#                                  namespace exists; cleans up after itself
#                                  when a step fails); --ipv6 adds the
#                                  IPv6 half (see below)
#   lab.sh flush ROUTER_NS [--ipv6]
#                                  networkd-style: delete rules 5210-5270 and
#                                  `throw 192.168.1.0/24` from table 52, as a
#                                  process whose comm is `systemd-network`;
#                                  --ipv6: the IPv6 rules and
#                                  `throw fd00:1::/64` too
#   lab.sh restore ROUTER_NS [--ipv6]
#                                  tailscaled-style: re-add rules 5210-5270
#                                  (NOT the throw route), comm `tailscaled`;
#                                  --ipv6: the IPv6 rules too
#   lab.sh reflect ROUTER_NS       for a tailnet peer that hands looped copies
#                                  back (tailnet_peer --reflect, as tailscaled
#                                  does for a subnet the router advertises
#                                  itself): tailscale0 accepts packets from
#                                  the router's own address (accept_local;
#                                  the masqueraded copies carry it, and the
#                                  kernel would drop them as martians)
#   lab.sh recreate-tun ROUTER_NS  tailscaled restarting: delete tailscale0
#                                  (its routes in table 52 vanish with it)
#                                  and create it again, a new ifindex, with
#                                  its address and those routes
#   lab.sh show ROUTER_NS          rules, table 52, addresses, nftables
#   lab.sh down ROUTER_NS LAN_NS   delete both namespaces (idempotent)
#
# Topology of ROUTER_NS:
#   tailscale0  persistent TUN, 100.98.98.126/32, no IPv6; a tailnet peer
#               (tests/bin/tailnet_peer.rs) attaches to it and plays
#               100.119.140.15
#   enp1s0      veth to LAN_NS (192.168.1.1/24); its end `eth0` in LAN_NS
#               is the LAN host 192.168.1.90/24, default via 192.168.1.1
#   incusbr0    veth 10.10.10.1/24 whose peer `vethincus` stays in
#               ROUTER_NS: the Incus bridge stand-in; it carries none of the
#               lab's traffic
#   rules       5210 fwmark 0x80000/0xff0000 lookup main
#               5230 fwmark 0x80000/0xff0000 lookup default
#               5250 fwmark 0x80000/0xff0000 unreachable
#               5270 lookup 52
#   table 52    100.119.140.15 dev tailscale0, default dev tailscale0,
#               throw 10.10.10.0/24, throw 192.168.1.0/24
#   nftables    forward: from tailscale0, mark 0x40000/0xff0000;
#               postrouting: mark 0x40000/0xff0000 is masqueraded
#   sysctl      IPv4 and IPv6 forwarding on; no IPv6 DAD (no delayed
#               link-local routes)
#
# With --ipv6, the router is also an IPv6 subnet router, as tailscaled sets
# one up (`--advertise-routes=...,fd42:10:10:10::/64,fd00:1::/64`):
#   tailscale0  also fd7a:115c:a1e0::7e/128 (the tailnet IPv6 address; no
#               link-local address, so no MLD noise into the TUN); the peer
#               plays fd7a:115c:a1e0::15
#   enp1s0      also fd00:1::1/64, the LAN prefix; the LAN host is
#               fd00:1::90/64, default via fd00:1::1
#   incusbr0    also fd42:10:10:10::1/64
#   rules -6    the same four rules, for IPv6
#   table 52 -6 fd7a:115c:a1e0::15 dev tailscale0, default dev tailscale0,
#               throw fd42:10:10:10::/64, throw fd00:1::/64
#   nftables    table ip6 tailscale: the same mark and masquerade
#
# The flush keeps `throw 10.10.10.0/24`, as on the incident's server (where
# it survived, and the Incus subnet kept working).
set -euo pipefail

PROG=lab.sh
ROUTER_TS_ADDR=100.98.98.126
PEER_ADDR=100.119.140.15

ROUTER_TS_ADDR6=fd7a:115c:a1e0::7e
PEER_ADDR6=fd7a:115c:a1e0::15
LAN_PREFIX6=fd00:1::/64
INCUS_PREFIX6=fd42:10:10:10::/64

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage() {
	# The subcommand block of the header comment.
	echo "usage:" >&2
	sed -n '/^#   lab.sh up/,/^#$/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^$/d' >&2
	exit 2
}

need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "\`$1\` is missing ($2): apt-get install -y $3"
}

# The real path of iproute2's ip (PATH may lack /usr/sbin under some runners).
IP=$(command -v ip || true)
for d in /usr/sbin /sbin /usr/bin /bin; do
	[ -n "$IP" ] && break
	[ -x "$d/ip" ] && IP=$d/ip
done
[ -n "$IP" ] || die "\`ip\` is missing (iproute2): apt-get install -y iproute2"
IP=$(readlink -f "$IP")

exists() {
	[ -e "/run/netns/$1" ]
}

# The Tailscale rules as `ip rule` arguments, one per line.
TS_RULES='pref 5210 fwmark 0x80000/0xff0000 table main
pref 5230 fwmark 0x80000/0xff0000 table default
pref 5250 fwmark 0x80000/0xff0000 type unreachable
pref 5270 table 52'

# Runs `ip [-6] -n NS -batch -` (commands on stdin; `ip_as NAME NS -6` for
# IPv6, as a batch has one family) as a process whose command
# name is NAME: the kernel takes comm from the executed file's name (truncated
# to 15 characters), so ip runs through a symlink named NAME. One process for
# the whole batch, as one daemon would make all of these changes.
ip_as() (
	name=$1 ns=$2 family=${3:-}
	dir=$(mktemp -d "${TMPDIR:-/tmp}/tl-comm.XXXXXX")
	trap 'rm -rf "$dir"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ln -s "$IP" "$dir/$name"
	"$dir/$name" $family -n "$ns" -batch -
)

# tailscale0 in namespace $1, up, with the router's tailnet address; $2
# is 1 for the IPv6 lab.
add_tun() {
	local r=$1 v6=${2:-0}
	"$IP" -n "$r" tuntap add dev tailscale0 mode tun
	if [ "$v6" = 1 ]; then
		# The tailnet IPv6 address and no link-local one: each time the peer
		# attaches, the kernel would otherwise redo link-local set-up on it
		# (MLD reports into the TUN, route notifications), noise in what the
		# lab shows.
		"$IP" netns exec "$r" sysctl -q -w net.ipv6.conf.tailscale0.addr_gen_mode=1 >/dev/null
		"$IP" -n "$r" addr add "$ROUTER_TS_ADDR6/128" dev tailscale0
	else
		# IPv4 only, unlike the real tailscale0, for the same reason.
		"$IP" netns exec "$r" sysctl -q -w net.ipv6.conf.tailscale0.disable_ipv6=1 >/dev/null
	fi
	"$IP" -n "$r" addr add "$ROUTER_TS_ADDR/32" dev tailscale0
	"$IP" -n "$r" link set tailscale0 up
}

# The IPv6 half of the lab (up --ipv6), after the IPv4 one.
up_ipv6() {
	local r=$1 l=$2
	"$IP" -n "$r" addr add fd00:1::1/64 dev enp1s0
	"$IP" -n "$l" addr add fd00:1::90/64 dev eth0
	"$IP" -n "$l" -6 route add default via fd00:1::1
	"$IP" -n "$r" addr add fd42:10:10:10::1/64 dev incusbr0
	while read -r rule; do
		"$IP" -n "$r" -6 rule add $rule
	done <<<"$TS_RULES"
	"$IP" -n "$r" -6 route add "$PEER_ADDR6" dev tailscale0 table 52
	"$IP" -n "$r" -6 route add default dev tailscale0 table 52
	"$IP" -n "$r" -6 route add throw "$INCUS_PREFIX6" table 52
	"$IP" -n "$r" -6 route add throw "$LAN_PREFIX6" table 52
	"$IP" netns exec "$r" nft -f - <<'EOF'
table ip6 tailscale {
	chain ts-forward {
		type filter hook forward priority filter; policy accept;
		iifname "tailscale0" meta mark set meta mark & 0xff00ffff | 0x00040000
	}
	chain ts-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x00ff0000 == 0x00040000 masquerade
	}
}
EOF
}

# 1 if the optional last argument asks for the IPv6 lab, else 0.
ipv6_flag() {
	case ${1:-} in
	'') echo 0 ;;
	--ipv6) echo 1 ;;
	*) usage ;;
	esac
}

cmd_up() {
	[ $# -eq 2 ] || [ $# -eq 3 ] || usage
	local r=$1 l=$2 v6
	v6=$(ipv6_flag "${3:-}")
	need nft "nftables, for the masquerade rule" nftables
	[ "$r" != "$l" ] || die "ROUTER_NS and LAN_NS must differ"
	exists "$r" && die "network namespace $r already exists"
	exists "$l" && die "network namespace $l already exists"
	# From here on, a failure or a signal removes what was created. (Explicit
	# signal traps: bash's default handling of a SIGINT that arrives while it
	# waits for a child can skip the EXIT trap's condition or spin.)
	# (Globals: with set -e the EXIT trap runs after this function's locals
	# are gone.)
	UP_ROUTER=$r UP_LAN=$l UP_COMPLETE=0
	trap 'if [ "$UP_COMPLETE" = 0 ]; then echo "$PROG: up did not complete; removing $UP_ROUTER and $UP_LAN" >&2; cmd_down "$UP_ROUTER" "$UP_LAN"; fi' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP

	"$IP" netns add "$r"
	"$IP" netns add "$l"
	# Forwarding on. No duplicate address detection: link-local addresses
	# (and their routes) appear at once when a link comes up, not a second
	# later in the middle of what the tracer is watching.
	"$IP" netns exec "$r" sysctl -q -w net.ipv4.ip_forward=1 \
		net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.accept_dad=0 >/dev/null
	"$IP" netns exec "$l" sysctl -q -w net.ipv6.conf.default.accept_dad=0 >/dev/null

	"$IP" -n "$r" link set lo up
	"$IP" -n "$l" link set lo up

	# tailscale0: a persistent TUN, held by the tailnet peer when it runs.
	add_tun "$r" "$v6"

	# enp1s0 to the LAN.
	"$IP" -n "$r" link add enp1s0 type veth peer name eth0 netns "$l"
	"$IP" -n "$r" addr add 192.168.1.1/24 dev enp1s0
	"$IP" -n "$r" link set enp1s0 up
	"$IP" -n "$l" addr add 192.168.1.90/24 dev eth0
	"$IP" -n "$l" link set eth0 up
	"$IP" -n "$l" route add default via 192.168.1.1

	# incusbr0: the Incus bridge stand-in, idle.
	"$IP" -n "$r" link add incusbr0 type veth peer name vethincus
	"$IP" -n "$r" addr add 10.10.10.1/24 dev incusbr0
	"$IP" -n "$r" link set vethincus up
	"$IP" -n "$r" link set incusbr0 up

	# tailscaled's policy routing.
	while read -r rule; do
		"$IP" -n "$r" rule add $rule
	done <<<"$TS_RULES"
	"$IP" -n "$r" route add "$PEER_ADDR" dev tailscale0 table 52
	"$IP" -n "$r" route add default dev tailscale0 table 52
	"$IP" -n "$r" route add throw 10.10.10.0/24 table 52
	"$IP" -n "$r" route add throw 192.168.1.0/24 table 52

	# tailscaled's netfilter: mark what comes from the tailnet, masquerade it.
	"$IP" netns exec "$r" nft -f - <<'EOF'
table ip tailscale {
	chain ts-forward {
		type filter hook forward priority filter; policy accept;
		iifname "tailscale0" meta mark set meta mark & 0xff00ffff | 0x00040000
	}
	chain ts-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x00ff0000 == 0x00040000 masquerade
	}
}
EOF
	if [ "$v6" = 1 ]; then
		up_ipv6 "$r" "$l"
	fi
	UP_COMPLETE=1
	trap - EXIT INT TERM HUP
}

cmd_flush() {
	[ $# -eq 1 ] || [ $# -eq 2 ] || usage
	local r=$1 v6
	v6=$(ipv6_flag "${2:-}")
	exists "$r" || die "network namespace $r does not exist"
	# systemd-networkd removing "foreign" rules, and the throw route with them.
	sed 's/^/rule del /' <<<"$TS_RULES" |
		{ cat; echo "route del throw 192.168.1.0/24 table 52"; } |
		ip_as systemd-networkd "$r"
	if [ "$v6" = 1 ]; then
		sed 's/^/rule del /' <<<"$TS_RULES" |
			{ cat; echo "route del throw $LAN_PREFIX6 table 52"; } |
			ip_as systemd-networkd "$r" -6
	fi
}

cmd_restore() {
	[ $# -eq 1 ] || [ $# -eq 2 ] || usage
	local r=$1 v6
	v6=$(ipv6_flag "${2:-}")
	exists "$r" || die "network namespace $r does not exist"
	# tailscaled: "somebody (likely systemd-networkd) deleted ip rules;
	# restoring Tailscale's". Only the rules.
	sed 's/^/rule add /' <<<"$TS_RULES" | ip_as tailscaled "$r"
	if [ "$v6" = 1 ]; then
		sed 's/^/rule add /' <<<"$TS_RULES" | ip_as tailscaled "$r" -6
	fi
}

cmd_reflect() {
	[ $# -eq 1 ] || usage
	local r=$1
	exists "$r" || die "network namespace $r does not exist"
	"$IP" netns exec "$r" sysctl -q -w net.ipv4.conf.tailscale0.accept_local=1 >/dev/null
}

cmd_recreate_tun() {
	[ $# -eq 1 ] || usage
	local r=$1
	exists "$r" || die "network namespace $r does not exist"
	"$IP" -n "$r" link del tailscale0
	add_tun "$r"
	"$IP" -n "$r" route add "$PEER_ADDR" dev tailscale0 table 52
	"$IP" -n "$r" route add default dev tailscale0 table 52
}

cmd_show() {
	[ $# -eq 1 ] || usage
	local r=$1
	exists "$r" || die "network namespace $r does not exist"
	echo "# ip -n $r -4 rule"
	"$IP" -n "$r" -4 rule
	echo "# ip -n $r route show table 52"
	"$IP" -n "$r" route show table 52
	echo "# ip -n $r -6 rule"
	"$IP" -n "$r" -6 rule
	echo "# ip -n $r -6 route show table 52"
	"$IP" -n "$r" -6 route show table 52
	echo "# ip -n $r -br addr"
	"$IP" -n "$r" -br addr
	echo "# ip netns exec $r nft list ruleset"
	"$IP" netns exec "$r" nft list ruleset
}

cmd_down() {
	[ $# -eq 2 ] || usage
	local ns
	for ns in "$@"; do
		if exists "$ns"; then
			"$IP" netns del "$ns" || echo "$PROG: cannot delete network namespace $ns" >&2
		fi
	done
}

[ $# -ge 1 ] || usage
sub=$1
shift
case $sub in
up) cmd_up "$@" ;;
flush) cmd_flush "$@" ;;
restore) cmd_restore "$@" ;;
reflect) cmd_reflect "$@" ;;
recreate-tun) cmd_recreate_tun "$@" ;;
show) cmd_show "$@" ;;
down) cmd_down "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
