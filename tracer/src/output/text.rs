//! The readable one-line-per-event format: wall-clock time, what changed,
//! the outcome, and who. Every string that came from outside (process
//! names, paths, interface names) is escaped.
use std::fmt::Write as _;

use super::text_forensic;
use crate::describe::{netns_label, route, rule, who};
use crate::escape::escape_str;
use crate::event::{Body, Event, Kind, LoopReport, PacketBrief};
use crate::zone::Zone;

fn packet(p: &PacketBrief) -> String {
    let mut s = format!("{} > {} {} ttl {}", p.src, p.dst, p.proto, p.ttl);
    if let Some(id) = p.id {
        let _ = write!(s, " id {id}");
    }
    if let (Some(i), Some(q)) = (p.icmp_id, p.icmp_seq) {
        let _ = write!(s, " echo id {i} seq {q}");
    }
    if let (Some(a), Some(b)) = (p.sport, p.dport) {
        let _ = write!(s, " ports {a} > {b}");
    }
    s
}

/// A loop: what came in, what went back out, why, and who caused it.
fn loop_line(e: &Event, l: &LoopReport, zone: Zone) -> String {
    let ts = zone.stamp(&e.ts);
    // Later lines start under the text after the time.
    let pad = ts.len();
    let iface = escape_str(&l.iface);
    let ns = netns_label(&l.netns);
    match e.kind {
        Kind::LoopSummary => format!(
            "{} loop      still looping on {iface} (netns {ns}): {} > {}, {} packets ({} new), lowest ttl {}, {} ttl-exceeded",
            ts,
            l.original.src,
            l.original.dst,
            l.packets,
            l.new_packets,
            l.lowest_ttl,
            l.ttl_exceeded
        ),
        Kind::LoopEnd => format!(
            "{} loop_end  loop on {iface} (netns {ns}) stopped: {} > {}, {} packets (lowest ttl {}) from {} to {}",
            ts,
            l.original.src,
            l.original.dst,
            l.packets,
            l.lowest_ttl,
            zone.stamp(&l.first_seen),
            zone.stamp(&l.last_seen)
        ),
        _ => {
            let mut s = format!(
                "{} LOOP      on {iface} (netns {ns}): in {} | back out {}{}",
                ts,
                packet(&l.original),
                packet(&l.looped),
                if l.snat {
                    " (source rewritten to the router's own address)"
                } else {
                    ""
                }
            );
            if let Some(k) = &l.lookup {
                let _ = write!(s, "\n{:<pad$} lookup:", "");
                if let Some(p) = k.rule_priority {
                    let _ = write!(s, " rule {p} ->");
                }
                if let Some(t) = k.table {
                    let _ = write!(s, " table {t}");
                }
                if let Some(r) = &k.route {
                    let _ = write!(s, " -> {}", escape_str(r));
                }
            }
            if let Some(sus) = l.suspect.as_deref().and_then(|e| Some((e, e.change()?))) {
                let what = sus
                    .1
                    .route
                    .as_ref()
                    .map(route)
                    .or_else(|| sus.1.rule.as_ref().map(rule))
                    .unwrap_or_default();
                let _ = write!(
                    s,
                    "\n{:<pad$} suspect: {} {what} at {} {}",
                    "",
                    sus.0.kind.as_str(),
                    zone.stamp(&sus.0.ts),
                    who(sus.1)
                );
            }
            let _ = write!(s, "\n{:<pad$} advice: {}", "", escape_str(&l.advice));
            s
        }
    }
}

/// One line for an event (no trailing newline), its times in `zone`.
pub fn line(e: &Event, zone: Zone) -> String {
    match &e.body {
        Body::Ready(r) => {
            let hooks: Vec<String> = r
                .hooks
                .iter()
                .map(|(h, s)| format!("{h}={}", s.as_str()))
                .collect();
            let ns: Vec<String> = r
                .namespaces
                .iter()
                .map(|n| {
                    n.name
                        .clone()
                        .map(|n| escape_str(&n))
                        .unwrap_or_else(|| format!("{}", n.inode.unwrap_or(0)))
                })
                .collect();
            let mut s = format!(
                "ready {} kernel {} hooks {} netns {}",
                zone.stamp(&e.ts),
                r.kernel,
                hooks.join(","),
                ns.join(",")
            );
            if !r.ifaces.is_empty() {
                let ifaces: Vec<String> = r
                    .ifaces
                    .iter()
                    .map(|i| {
                        let on_demand = if i.programs == Some("on_demand") {
                            "/on_demand"
                        } else {
                            ""
                        };
                        format!(
                            "{}={}{on_demand}",
                            escape_str(&i.iface),
                            i.via.unwrap_or("absent")
                        )
                    })
                    .collect();
                let _ = write!(s, " ifaces {}", ifaces.join(","));
            }
            s
        }
        Body::Lost(l) => format!(
            "{} lost      {} records lost ({})",
            zone.stamp(&e.ts),
            l.count,
            l.location
        ),
        Body::Change(c) => {
            let what = match (&c.route, &c.rule) {
                (Some(r), _) => route(r),
                (_, Some(r)) => rule(r),
                _ => String::new(),
            };
            let result = c.result.as_deref().unwrap_or("unknown");
            let mut s = format!("{} {:<9} {what}", zone.stamp(&e.ts), e.kind.as_str());
            if let Some(old) = &c.old {
                let _ = write!(s, " (was {})", route(old));
            }
            let _ = write!(s, " {result}");
            if let Some(cause) = c.cause {
                let _ = write!(s, " cause {}", cause.as_str());
            }
            let _ = write!(s, " {}", who(c));
            let _ = write!(
                s,
                " netns {} [{}]",
                netns_label(&c.netns),
                e.source.as_str()
            );
            if let Some(n) = &c.note {
                let _ = write!(s, " ({n})");
            }
            s
        }
        Body::Loop(l) => loop_line(e, l, zone),
        Body::State(st) => text_forensic::state_line(e, st, zone),
        Body::SnapshotEnd(st) => text_forensic::snapshot_end_line(e, st, zone),
        Body::Journal(j) => text_forensic::journal_line(e, j, zone),
        Body::Guard(g) => text_forensic::guard_line(e, g, zone),
        Body::GuardAction(a) => text_forensic::action_line(e, a, zone),
        Body::GuardRepair(r) => text_forensic::repair_line(e, r, zone),
        Body::GuardReload(r) => text_forensic::reload_line(e, r, zone),
        Body::Namespace(n) => text_forensic::namespace_line(e, n, zone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Change, Family, Kind, Netns, Process, Route, Rule, Source};

    fn line_utc(e: &Event) -> String {
        line(e, Zone::Utc)
    }

    fn change(route: Route, comm: &str) -> Event {
        Event {
            ts: "2026-04-10T06:52:46.000001Z".into(),
            kind: Kind::RouteDel,
            source: Source::Tracepoint,
            body: Body::Change(Box::new(Change {
                process: Some(std::sync::Arc::new(Process {
                    pid: 812,
                    tid: 812,
                    comm: comm.into(),
                    ppid: Some(1),
                    parent_comm: Some("systemd".into()),
                    uid: 0,
                    unit: Some("systemd-networkd.service".into()),
                    ..Process::default()
                })),
                netns: Netns {
                    inode: Some(4026531840),
                    name: None,
                },
                rule: None,
                route: Some(route),
                result: Some("ok".into()),
                cause: None,
                old: None,
                nexthop: None,
                old_nexthop: None,
                cause_nhid: None,
                nl_seq: Some(3),
                note: None,
            })),
        }
    }

    #[test]
    fn ready_line_says_how_each_interface_is_watched() {
        let e = Event {
            ts: "2026-04-10T06:52:40.000001Z".into(),
            kind: Kind::Ready,
            source: Source::Tracepoint,
            body: Body::Ready(crate::event::Ready {
                hooks: [("rule_del".to_string(), Source::Tracepoint)].into(),
                functions: Default::default(),
                kernel: "6.18.44".into(),
                version: "0.1.0".into(),
                pid: 1,
                namespaces: vec![Netns {
                    inode: Some(4026532177),
                    name: Some("router".into()),
                }],
                ifaces: vec![
                    crate::event::WatchedIface {
                        iface: "router:tailscale0".into(),
                        via: Some("tc"),
                        hook: Some("tcx"),
                        programs: Some("on_demand"),
                    },
                    crate::event::WatchedIface {
                        iface: "wg\u{1b}0".into(),
                        via: None,
                        hook: None,
                        programs: None,
                    },
                ],
            }),
        };
        assert_eq!(
            line_utc(&e),
            "ready 2026-04-10T06:52:40.000001Z kernel 6.18.44 hooks rule_del=tracepoint netns router ifaces router:tailscale0=tc/on_demand,wg\\e0=absent"
        );
    }

    #[test]
    fn route_line_reads_like_ip_route() {
        let r = Route {
            family: Some(Family::Inet),
            table: Some(52),
            rtype: Some("throw".into()),
            dst: Some("192.168.1.0/24".into()),
            protocol: Some("boot".into()),
            ..Route::default()
        };
        let l = line_utc(&change(r, "systemd-network"));
        assert_eq!(
            l,
            "2026-04-10T06:52:46.000001Z route_del inet throw 192.168.1.0/24 table 52 proto boot ok by systemd-network[812] parent systemd[1] uid 0 unit systemd-networkd.service netns 4026531840 [tracepoint]"
        );
    }

    #[test]
    fn hostile_names_are_escaped() {
        let r = Route {
            dst: Some("10.0.0.0/8".into()),
            dev: Some("eth\u{1b}[31m0".into()),
            ..Route::default()
        };
        let l = line_utc(&change(r, "\u{1b}]0;pwned\u{7}"));
        assert!(!l.contains('\u{1b}'), "{l}");
        assert!(!l.contains('\u{7}'), "{l}");
    }

    #[test]
    fn rule_line_reads_like_ip_rule() {
        let r = Rule {
            family: Some(Family::Inet),
            priority: Some(5210),
            fwmark: Some(0x80000),
            fwmask: Some(0xff0000),
            table: Some(254),
            table_name: Some("main".into()),
            action: Some("table".into()),
            ..Rule::default()
        };
        assert_eq!(
            rule(&r),
            "inet pref 5210 fwmark 0x80000/0xff0000 lookup 254(main)"
        );
        let u = Rule {
            family: Some(Family::Inet),
            priority: Some(5250),
            action: Some("unreachable".into()),
            ..Rule::default()
        };
        assert_eq!(rule(&u), "inet pref 5250 unreachable");
    }
}
