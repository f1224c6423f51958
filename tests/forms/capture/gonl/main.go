// gonl: rule and route requests made with github.com/vishvananda/netlink,
// the library tailscaled, kube-router and Cilium use, one per invocation,
// for capture.py to record. Built offline against Debian's
// golang-github-vishvananda-netlink-dev:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS=-mod=mod go build -o /tmp/gonl main.go
//
// Run inside the namespace (ip netns exec NS gonl CASE). Interface indexes
// are those of tests/forms/setup.ip: d0 is 3, d1 is 5.
package main

import (
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// tailscaled's policy rule: NewRule, then priority, mark/mask, table.
func rule(prio, table, family int) *netlink.Rule {
	r := netlink.NewRule()
	r.Priority = prio
	r.Table = table
	r.Family = family
	return r
}

func main() {
	var err error
	switch os.Args[1] {
	case "rule-add-fwmark":
		r := rule(5210, 254, unix.AF_INET)
		r.Mark = 0x80000
		r.Mask = 0xff0000
		err = netlink.RuleAdd(r)
	case "rule-add-table":
		err = netlink.RuleAdd(rule(5270, 52, unix.AF_INET))
	case "rule-add-table-v6":
		err = netlink.RuleAdd(rule(5270, 52, unix.AF_INET6))
	case "rule-add-suppress":
		r := rule(5230, 254, unix.AF_INET6)
		r.SuppressPrefixlen = 0
		err = netlink.RuleAdd(r)
	case "rule-add-src-oif":
		r := rule(5280, 53, unix.AF_INET)
		r.Src = cidr("10.60.0.0/16")
		r.OifName = "d1"
		err = netlink.RuleAdd(r)
	case "rule-del-table":
		err = netlink.RuleDel(rule(5290, 52, unix.AF_INET))
	case "rule-del-table-v6":
		err = netlink.RuleDel(rule(5291, 52, unix.AF_INET6))
	case "route-add-via":
		err = netlink.RouteAdd(&netlink.Route{Dst: cidr("10.61.0.0/16"), Gw: net.ParseIP("192.0.2.2"), LinkIndex: 3, Table: 52})
	case "route-add-dev-v6":
		err = netlink.RouteAdd(&netlink.Route{Dst: cidr("2001:db8:61::/64"), LinkIndex: 5, Table: 52})
	case "route-add-throw":
		err = netlink.RouteAdd(&netlink.Route{Dst: cidr("10.62.0.0/16"), Type: unix.RTN_THROW, Table: 52, Protocol: unix.RTPROT_STATIC})
	case "route-add-default":
		err = netlink.RouteAdd(&netlink.Route{Dst: cidr("0.0.0.0/0"), LinkIndex: 3, Table: 59, Scope: netlink.SCOPE_LINK})
	case "route-add-multipath":
		err = netlink.RouteAdd(&netlink.Route{Dst: cidr("10.63.0.0/24"), Table: 52, MultiPath: []*netlink.NexthopInfo{
			{LinkIndex: 3, Gw: net.ParseIP("192.0.2.2"), Hops: 0},
			{LinkIndex: 5, Gw: net.ParseIP("198.51.100.2"), Hops: 1},
		}})
	case "route-replace":
		err = netlink.RouteReplace(&netlink.Route{Dst: cidr("10.64.0.0/16"), Gw: net.ParseIP("192.0.2.3"), LinkIndex: 3, Table: 52})
	case "route-replace-v6":
		err = netlink.RouteReplace(&netlink.Route{Dst: cidr("2001:db8:64::/64"), Gw: net.ParseIP("2001:db8:1::3"), LinkIndex: 3, Table: 52})
	case "route-del":
		err = netlink.RouteDel(&netlink.Route{Dst: cidr("10.65.0.0/16"), Table: 52})
	case "route-del-throw":
		err = netlink.RouteDel(&netlink.Route{Dst: cidr("10.66.0.0/16"), Type: unix.RTN_THROW, Table: 52})
	default:
		err = fmt.Errorf("unknown case %s", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gonl:", err)
		os.Exit(1)
	}
}
