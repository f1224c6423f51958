/* nlrule: rule and route requests made with libnl-route-3 (the netlink
 * library of NetworkManager's lineage and of many C daemons), one per
 * invocation, for capture.py to record. Built with Debian's
 * libnl-route-3-dev:
 *   gcc -o /tmp/nlrule nlrule.c $(pkg-config --cflags --libs libnl-route-3.0)
 * Run inside the namespace; interface indexes are tests/forms/setup.ip's
 * (d0 is 3, d1 is 5). */
#include <stdio.h>
#include <string.h>
#include <netlink/netlink.h>
#include <netlink/route/rule.h>
#include <netlink/route/route.h>
#include <linux/rtnetlink.h>

static struct nl_addr *addr(const char *s, int family)
{
	struct nl_addr *a = NULL;
	if (nl_addr_parse(s, family, &a) < 0)
		fprintf(stderr, "bad address %s\n", s);
	return a;
}

static struct rtnl_rule *rule(int family, unsigned prio, unsigned table)
{
	struct rtnl_rule *r = rtnl_rule_alloc();
	rtnl_rule_set_family(r, family);
	rtnl_rule_set_prio(r, prio);
	rtnl_rule_set_table(r, table);
	rtnl_rule_set_action(r, FR_ACT_TO_TBL);
	return r;
}

static struct rtnl_route *route(int family, const char *dst, unsigned table)
{
	struct rtnl_route *r = rtnl_route_alloc();
	rtnl_route_set_family(r, family);
	rtnl_route_set_dst(r, addr(dst, family));
	rtnl_route_set_table(r, table);
	return r;
}

static void hop(struct rtnl_route *r, int family, const char *gw, int ifindex, int weight)
{
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_nh_set_gateway(nh, addr(gw, family));
	if (weight)
		rtnl_route_nh_set_weight(nh, weight);
	rtnl_route_add_nexthop(r, nh);
}

int main(int argc, char **argv)
{
	struct nl_sock *sk = nl_socket_alloc();
	const char *c = argc > 1 ? argv[1] : "";
	int err = -1;

	nl_connect(sk, NETLINK_ROUTE);
	if (!strcmp(c, "rule-add")) {
		err = rtnl_rule_add(sk, rule(AF_INET, 5300, 52), NLM_F_CREATE);
	} else if (!strcmp(c, "rule-add-src-v6")) {
		struct rtnl_rule *r = rule(AF_INET6, 5301, 52);
		rtnl_rule_set_src(r, addr("2001:db8:70::/48", AF_INET6));
		err = rtnl_rule_add(sk, r, NLM_F_CREATE);
	} else if (!strcmp(c, "rule-add-fwmark")) {
		struct rtnl_rule *r = rule(AF_INET, 5302, 254);
		rtnl_rule_set_mark(r, 0x80000);
		rtnl_rule_set_mask(r, 0xff0000);
		err = rtnl_rule_add(sk, r, NLM_F_CREATE);
	} else if (!strcmp(c, "rule-del")) {
		err = rtnl_rule_delete(sk, rule(AF_INET, 5303, 52), 0);
	} else if (!strcmp(c, "route-add")) {
		struct rtnl_route *r = route(AF_INET, "10.70.0.0/16", 52);
		hop(r, AF_INET, "192.0.2.2", 3, 0);
		err = rtnl_route_add(sk, r, NLM_F_CREATE | NLM_F_EXCL);
	} else if (!strcmp(c, "route-add-multipath-v6")) {
		struct rtnl_route *r = route(AF_INET6, "2001:db8:71::/64", 52);
		hop(r, AF_INET6, "2001:db8:1::2", 3, 1);
		hop(r, AF_INET6, "2001:db8:2::2", 5, 2);
		err = rtnl_route_add(sk, r, NLM_F_CREATE | NLM_F_EXCL);
	} else if (!strcmp(c, "route-replace")) {
		struct rtnl_route *r = route(AF_INET, "10.72.0.0/16", 52);
		hop(r, AF_INET, "192.0.2.3", 3, 0);
		err = rtnl_route_add(sk, r, NLM_F_CREATE | NLM_F_REPLACE);
	} else if (!strcmp(c, "route-del")) {
		err = rtnl_route_delete(sk, route(AF_INET, "10.73.0.0/16", 52), 0);
	}
	if (err < 0) {
		fprintf(stderr, "nlrule %s: %s\n", c, nl_geterror(err));
		return 1;
	}
	return 0;
}
