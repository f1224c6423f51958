//! The subnet-router lab (tests/lab/lab.sh): two namespaces rebuilt from
//! the incident of 2026-04-10, the tailnet peer (tests/bin/tailnet_peer.rs)
//! that pings through it, and their clean-up on drop.
use serde_json::Value;
use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

pub const PEER: &str = "100.119.140.15";
pub const LAN_HOST: &str = "192.168.1.90";
pub const ROUTER_TAILNET_ADDR: &str = "100.98.98.126";
/// Echo ids: the healthy pings and the broken ones are different flows (and
/// conntrack entries: the healthy flow's NAT binding would otherwise be
/// reused by the looped copies).
pub const HEALTHY_ID: &str = "1";
pub const BROKEN_ID: u64 = 7;

/// What differs between the IPv4 lab and the IPv6 one (`lab.sh up
/// --ipv6`): addresses, the throw route the flush removes, and how the
/// packets and the lookups look.
#[derive(Clone, Copy, Debug)]
pub struct Stack {
    pub family: &'static str,
    pub peer: &'static str,
    pub lan_host: &'static str,
    pub router_tailnet_addr: &'static str,
    /// The throw route of table 52 the flush removes.
    pub throw: &'static str,
    /// The packets' `proto`, and the peer's word for it.
    pub proto: &'static str,
    pub peer_proto: &'static str,
    /// The peer's word for TTL.
    pub ttl_word: &'static str,
    /// The error of the local table's lookup before table 52's.
    pub local_err: &'static str,
    /// lab.sh's extra argument.
    pub flag: Option<&'static str>,
}

pub const V4: Stack = Stack {
    family: "inet",
    peer: PEER,
    lan_host: LAN_HOST,
    router_tailnet_addr: ROUTER_TAILNET_ADDR,
    throw: "192.168.1.0/24",
    proto: "icmp",
    peer_proto: "icmp",
    ttl_word: "ttl",
    local_err: "EAGAIN",
    flag: None,
};

pub const V6: Stack = Stack {
    family: "inet6",
    peer: "fd7a:115c:a1e0::15",
    lan_host: "fd00:1::90",
    router_tailnet_addr: "fd7a:115c:a1e0::7e",
    throw: "fd00:1::/64",
    proto: "ipv6-icmp",
    peer_proto: "icmp6",
    ttl_word: "hlim",
    local_err: "EHOSTUNREACH",
    flag: Some("--ipv6"),
};

pub fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab/lab.sh")
}

pub fn peer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tailnet_peer"))
}

pub fn lab_sh(args: &[&str]) -> String {
    super::run("bash", &[&[lab_script().to_str().unwrap()], args].concat())
}

/// The lab's two namespaces (`tl-<pid>-<n>-r`, `tl-<pid>-<n>-l`), built
/// healthy by `lab.sh up` and removed by `lab.sh down` on drop.
pub struct Lab {
    pub router: String,
    pub lan: String,
    pub stack: Stack,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    pub fn up() -> Lab {
        Lab::up_with(V4)
    }

    /// The lab with its IPv6 half (`lab.sh up --ipv6`); its pings are IPv6.
    pub fn up_ipv6() -> Lab {
        Lab::up_with(V6)
    }

    fn args<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend(self.stack.flag);
        v
    }

    fn up_with(stack: Stack) -> Lab {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the lab tests need root (network namespaces, eBPF); run them as root"
        );
        let base = format!(
            "tl-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            router: format!("{base}-r"),
            lan: format!("{base}-l"),
            stack,
        };
        lab_sh(&lab.args(&["up", &lab.router, &lab.lan]));
        lab
    }

    /// systemd-networkd's flush, then tailscaled's partial restore: the
    /// rules are back, `throw 192.168.1.0/24` is not.
    pub fn break_it(&self) {
        lab_sh(&self.args(&["flush", &self.router]));
        lab_sh(&self.args(&["restore", &self.router]));
        let table52 = super::run("ip", &["-n", &self.router, "route", "show", "table", "52"]);
        assert!(
            !table52.contains("192.168.1.0/24") && table52.contains("throw 10.10.10.0/24"),
            "after flush and restore, table 52 keeps only throw 10.10.10.0/24:\n{table52}"
        );
        if self.stack.flag.is_some() {
            let table52 = super::run(
                "ip",
                &["-n", &self.router, "-6", "route", "show", "table", "52"],
            );
            assert!(
                !table52.contains("fd00:1::/64") && table52.contains("throw fd42:10:10:10::/64"),
                "after flush and restore, IPv6 table 52 keeps only throw fd42:10:10:10::/64:\n{table52}"
            );
        }
    }

    /// Lets tailscale0 take back the looped copies the peer reflects
    /// (`lab.sh reflect`: they carry the router's own address).
    pub fn reflect(&self) {
        lab_sh(&["reflect", &self.router]);
    }

    /// tailscaled restarting: tailscale0 deleted and created again (a new
    /// ifindex), with its address and its routes in table 52.
    pub fn recreate_tun(&self) {
        lab_sh(&["recreate-tun", &self.router]);
    }

    /// `tc filter show dev tailscale0 DIR` in the router namespace.
    pub fn tc_filters(&self, dir: &str) -> String {
        super::run(
            "ip",
            &[
                "netns",
                "exec",
                &self.router,
                "tc",
                "filter",
                "show",
                "dev",
                "tailscale0",
                dir,
            ],
        )
    }

    /// `iface` in the router namespace, as `--iface` spells it.
    pub fn iface(&self, iface: &str) -> String {
        format!("{}:{iface}", self.router)
    }

    /// Runs the tailnet peer in the router namespace: `count` echo requests
    /// 100.119.140.15 > 192.168.1.90 (IPv6 lab: fd7a:115c:a1e0::15 >
    /// fd00:1::90) with echo id `id`.
    pub fn ping(&self, id: &str, count: u32) -> PeerRun {
        self.peer(id, count, &[])
    }

    /// [`Lab::ping`] with the peer reflecting the looped copies back into
    /// the router (`--reflect`): the loop makes a pass per TTL.
    pub fn ping_reflecting(&self, id: &str, count: u32) -> PeerRun {
        self.peer(id, count, &["--reflect"])
    }

    fn peer(&self, id: &str, count: u32, extra: &[&str]) -> PeerRun {
        let s = &self.stack;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.router])
            .arg(peer_bin())
            .args(["--src", s.peer, "--dst", s.lan_host])
            .args(["--id", id, "--count", &count.to_string()])
            .args(["--interval-ms", "100", "--timeout-ms", "2000"])
            .args(extra)
            .output()
            .expect("run tailnet_peer");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tailnet_peer failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        PeerRun::parse(stdout, self.stack)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", &self.router, &self.lan])
            .status();
    }
}

/// What the peer printed, and its summary line as numbers.
pub struct PeerRun {
    pub stdout: String,
    pub summary: HashMap<String, u64>,
    pub stack: Stack,
}

impl PeerRun {
    /// What the peer printed, with its summary line read.
    pub fn parse(stdout: String, stack: Stack) -> PeerRun {
        let summary = stdout
            .lines()
            .find_map(|l| l.strip_prefix("peer: summary "))
            .unwrap_or_else(|| panic!("no summary line from tailnet_peer:\n{stdout}"))
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().expect("summary number")))
            .collect();
        PeerRun {
            stdout,
            summary,
            stack,
        }
    }

    pub fn count(&self, key: &str) -> u64 {
        *self
            .summary
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in the peer's summary:\n{}", self.stdout))
    }

    /// Every request answered with an echo reply: the router forwarded
    /// them to the LAN host and its replies back.
    pub fn assert_replied(&self, count: u64) {
        assert_eq!(
            (
                self.count("sent"),
                self.count("replies"),
                self.count("looped")
            ),
            (count, count, 0),
            "healthy router: every request gets an echo reply:\n{}",
            self.stdout
        );
    }

    /// Every request came back into the TUN, sourced from the router.
    pub fn assert_looped(&self, count: u64) {
        assert_eq!(
            (
                self.count("sent"),
                self.count("replies"),
                self.count("looped")
            ),
            (count, 0, count),
            "broken router: every request is routed back to the tailnet:\n{}",
            self.stdout
        );
        let s = &self.stack;
        assert!(
            self.stdout.contains(&format!(
                "got {} > {} {} echo-request id {BROKEN_ID} seq 1 {} 63",
                s.router_tailnet_addr, s.lan_host, s.peer_proto, s.ttl_word
            )),
            "the looped copy carries the router's tailnet address:\n{}",
            self.stdout
        );
    }
}

/// The broken lab's one `loop` event, field by field: the looping flow
/// (the peer's request and its copy routed back, masqueraded), the route
/// lookup that sent it back (table 52, rule 5270), the change that caused
/// it (the flush's removal of `throw 192.168.1.0/24`) and the advice.
/// `router` is the router's namespace; `peer` what the peer printed.
/// `hook` is how tailscale0 was watched (`tcx`, `clsact` or `tracepoint`):
/// the loop's `source` names the mechanism that saw its packets.
pub fn check_loop(e: &Value, router: &str, peer: &str, hook: &str) {
    check_loop_of(V4, e, router, peer, hook, false)
}

/// [`check_loop`] for the lab of `stack` (IPv4 or IPv6). `passes`: the
/// peer reflected the looped copies, so the loop made a pass per TTL
/// (more packets, lower TTLs) rather than one per request.
pub fn check_loop_of(stack: Stack, e: &Value, router: &str, peer: &str, hook: &str, passes: bool) {
    let st = &stack;
    let ctx = format!("loop event: {e:#}\npeer:\n{peer}");
    let check = |field: &str, got: &Value, want: Value| {
        assert_eq!(got, &want, "{field}; {ctx}");
    };

    let source = if hook == "tracepoint" {
        "tracepoint"
    } else {
        "tc"
    };
    check("source", &e["source"], source.into());

    check("netns.name", &e["netns"]["name"], router.into());
    check("iface", &e["iface"], "tailscale0".into());
    check("family", &e["family"], st.family.into());

    let (o, l) = (&e["original"], &e["looped"]);
    check("original.src", &o["src"], st.peer.into());
    check("original.dst", &o["dst"], st.lan_host.into());
    check("original.proto", &o["proto"], st.proto.into());
    check("original.ttl", &o["ttl"], 64.into());
    check("original.icmp_id", &o["icmp_id"], BROKEN_ID.into());
    check("looped.src", &l["src"], st.router_tailnet_addr.into());
    check("looped.dst", &l["dst"], st.lan_host.into());
    check("looped.proto", &l["proto"], st.proto.into());
    let ttl = o["ttl"]
        .as_u64()
        .unwrap_or_else(|| panic!("original.ttl; {ctx}"));
    check("looped.ttl (original.ttl - 1)", &l["ttl"], (ttl - 1).into());
    check("looped.icmp_id", &l["icmp_id"], o["icmp_id"].clone());
    check("looped.icmp_seq", &l["icmp_seq"], o["icmp_seq"].clone());
    check("looped.id (IP id kept)", &l["id"], o["id"].clone());
    check("snat (masqueraded)", &e["snat"], true.into());
    let looped_ttl = ttl - 1;
    let lowest = e["lowest_ttl"]
        .as_u64()
        .unwrap_or_else(|| panic!("lowest_ttl is a number; {ctx}"));
    if passes {
        // Reported once the hairpin lookup came (the second pass brings it).
        assert!(
            e["packets"].as_u64().is_some_and(|n| n >= 2),
            "packets counts the passes (at least 2); {ctx}"
        );
        assert!(
            lowest < looped_ttl,
            "lowest_ttl below looped.ttl: the TTL decreases across passes; {ctx}"
        );
    } else {
        assert!(
            e["packets"].as_u64().is_some_and(|n| (1..=3).contains(&n)),
            "packets is 1..=3 (the peer sent 3); {ctx}"
        );
        check("lowest_ttl (one pass)", &e["lowest_ttl"], looped_ttl.into());
    }

    let lk = &e["lookup"];
    check("lookup.table", &lk["table"], 52.into());
    check(
        "lookup.route",
        &lk["route"],
        "default dev tailscale0".into(),
    );
    check("lookup.result_dev", &lk["result_dev"], "tailscale0".into());
    check("lookup.rule_priority", &lk["rule_priority"], 5270.into());
    // The FIB lookups that sent it back, in the first loop event (lookup
    // tracing starts with the first looped packet; the peer's next request
    // brings them): the local table (rule 0, no match), then table 52.
    check(
        "lookup.tables_tried",
        &lk["tables_tried"],
        serde_json::json!([
            {"table": 255, "err": st.local_err},
            {"table": 52, "err": null},
        ]),
    );

    let s = &e["suspect"];
    check("suspect.kind", &s["kind"], "route_del".into());
    check(
        "suspect.route.family",
        &s["route"]["family"],
        st.family.into(),
    );
    check("suspect.route.dst", &s["route"]["dst"], st.throw.into());
    check("suspect.route.type", &s["route"]["type"], "throw".into());
    check("suspect.route.table", &s["route"]["table"], 52.into());
    check(
        "suspect.process.comm",
        &s["process"]["comm"],
        FLUSH_COMM.into(),
    );

    let advice = e["advice"]
        .as_str()
        .unwrap_or_else(|| panic!("advice is a string; {ctx}"));
    assert!(
        advice.contains(&format!(
            "a route covering {} in table 52 is missing: `throw {}",
            st.lan_host, st.throw
        )) && advice.contains("by systemd-network (pid"),
        "advice names {}, table 52, the removed throw route and who removed it; {ctx}",
        st.lan_host
    );
}

/// The flush's process as the kernel names it (`systemd-networkd` cut to
/// 15 characters).
pub const FLUSH_COMM: &str = "systemd-network";

/// Is `e` the flush's removal of `throw 192.168.1.0/24` from table 52 in
/// namespace `router`, by the flush's process?
pub fn is_throw_removal(e: &Value, router: &str) -> bool {
    e["kind"] == "route_del"
        && e["netns"]["name"] == router
        && e["route"]["dst"] == "192.168.1.0/24"
        && e["route"]["type"] == "throw"
        && e["route"]["table"] == 52
        && e["process"]["comm"] == FLUSH_COMM
        && e["result"] == "ok"
}
