#!/bin/sh
# Apply and replay the request-form corpus (tests/forms/*.forms) in one
# network namespace, on this kernel (tests/forms.rs) or inside a QEMU VM.
#
#   run.sh NS NLRAW IP pre             setup.ip, then every case's `pre` lines
#   run.sh NS NLRAW IP replay [CASE..] replay cases' bytes with NLRAW (all: file order)
#   run.sh NS NLRAW IP ip [CASE..]     run iproute2 cases' own `ip` command (or -batch)
#   run.sh NS NLRAW IP all             pre, then replay (default)
#
# NS must exist and be empty; NLRAW is tests/bin/nlraw; IP is iproute2's ip.
# Every case uses objects of its own, so the cases run one after the other
# in the same namespace; `replay` and `ip` need a namespace each (both
# would make the same changes). The expected events are the `expect` lines
# of each case, in order (tests/forms/README.md); `replay` prints the case
# name before nlraw's `sent`/`ack` lines.
set -eu
NS=$1
NLRAW=$2
IP=$3
PHASE=${4:-all}
[ $# -ge 4 ] && shift 4 || shift 3
DIR=$(cd "$(dirname "$0")" && pwd)

cases() { # the names of the cases, in file order; $1: "ip" for iproute2 ones with a command
	for f in "$DIR"/*.forms; do
		awk -v want="$1" '/^case /{n=$2} /^client /{c=$2}
			/^(cmd|batch) /{if (c=="iproute2" && !seen[n]++) ip[n]=1}
			/^send /{if (want!="ip") print n; else if (ip[n]) print n}' "$f"
	done
}

pre() {
	sed -n 's/^setup //p' "$DIR/setup.ip" | while read -r l; do
		# shellcheck disable=SC2086
		$IP -n "$NS" $l
	done
	sed -n 's/^ifindex //p' "$DIR/setup.ip" | while read -r dev idx; do
		got=$($IP -n "$NS" -o link show "$dev" | cut -d: -f1)
		[ "$got" = "$idx" ] || { echo "run.sh: $dev is ifindex $got in $NS, not $idx" >&2; exit 1; }
	done
	for f in "$DIR"/*.forms; do
		sed -n 's/^pre //p' "$f" | while read -r l; do
			# shellcheck disable=SC2086
			$IP -n "$NS" $l
		done
	done
}

replay_one() {
	args=$(awk -v c="$1" '/^case /{on=($2==c)} on && /^send /{m=$2}
		on && /^dgram/{d=d " "; s=""} on && /^msg /{d=d s $2; s=","}
		END{print m " " d}' "$DIR"/*.forms)
	echo "case $1"
	# shellcheck disable=SC2086
	$IP netns exec "$NS" "$NLRAW" replay $args
}

ip_one() {
	echo "case $1"
	cmd=$(awk -v c="$1" '/^case /{on=($2==c)} on && /^cmd /{sub(/^cmd /,""); print}' "$DIR"/*.forms)
	if [ -n "$cmd" ]; then
		# shellcheck disable=SC2086
		$IP -n "$NS" $cmd && echo "exit 0" || echo "exit $?"
	else
		b=$(mktemp)
		awk -v c="$1" '/^case /{on=($2==c)} on && /^batch /{sub(/^batch /,""); print}' "$DIR"/*.forms >"$b"
		$IP -n "$NS" -batch "$b" && echo "exit 0" || echo "exit $?"
		rm -f "$b"
	fi
}

case $PHASE in
pre) pre ;;
replay | ip)
	[ $# -gt 0 ] || set -- $(cases "$PHASE")
	for c in "$@"; do "${PHASE}_one" "$c"; done
	;;
all)
	pre
	for c in $(cases replay); do replay_one "$c"; done
	;;
*) echo "usage: run.sh NS NLRAW IP [pre|replay [CASE...]|ip [CASE...]|all]" >&2; exit 2 ;;
esac
