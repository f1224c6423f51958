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
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    pub fn up() -> Lab {
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
        };
        lab_sh(&["up", &lab.router, &lab.lan]);
        lab
    }

    /// systemd-networkd's flush, then tailscaled's partial restore: the
    /// rules are back, `throw 192.168.1.0/24` is not.
    pub fn break_it(&self) {
        lab_sh(&["flush", &self.router]);
        lab_sh(&["restore", &self.router]);
        let table52 = super::run("ip", &["-n", &self.router, "route", "show", "table", "52"]);
        assert!(
            !table52.contains("192.168.1.0/24") && table52.contains("throw 10.10.10.0/24"),
            "after flush and restore, table 52 keeps only throw 10.10.10.0/24:\n{table52}"
        );
    }

    /// tailscaled restarting: tailscale0 deleted and created again (a new
    /// ifindex), with its address and its routes in table 52.
    pub fn recreate_tun(&self) {
        lab_sh(&["recreate-tun", &self.router]);
    }

    /// `iface` in the router namespace, as `--iface` spells it.
    pub fn iface(&self, iface: &str) -> String {
        format!("{}:{iface}", self.router)
    }

    /// Runs the tailnet peer in the router namespace: `count` echo requests
    /// 100.119.140.15 > 192.168.1.90 with echo id `id`.
    pub fn ping(&self, id: &str, count: u32) -> PeerRun {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.router])
            .arg(peer_bin())
            .args(["--id", id, "--count", &count.to_string()])
            .args(["--interval-ms", "100", "--timeout-ms", "2000"])
            .output()
            .expect("run tailnet_peer");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tailnet_peer failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        PeerRun::parse(stdout)
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
}

impl PeerRun {
    /// What the peer printed, with its summary line read.
    pub fn parse(stdout: String) -> PeerRun {
        let summary = stdout
            .lines()
            .find_map(|l| l.strip_prefix("peer: summary "))
            .unwrap_or_else(|| panic!("no summary line from tailnet_peer:\n{stdout}"))
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().expect("summary number")))
            .collect();
        PeerRun { stdout, summary }
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
        assert!(
            self.stdout.contains(&format!(
                "got {ROUTER_TAILNET_ADDR} > {LAN_HOST} icmp echo-request id {BROKEN_ID} seq 1 ttl 63"
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
    check("family", &e["family"], "inet".into());

    let (o, l) = (&e["original"], &e["looped"]);
    check("original.src", &o["src"], PEER.into());
    check("original.dst", &o["dst"], LAN_HOST.into());
    check("original.proto", &o["proto"], "icmp".into());
    check("original.ttl", &o["ttl"], 64.into());
    check("original.icmp_id", &o["icmp_id"], BROKEN_ID.into());
    check("looped.src", &l["src"], ROUTER_TAILNET_ADDR.into());
    check("looped.dst", &l["dst"], LAN_HOST.into());
    check("looped.proto", &l["proto"], "icmp".into());
    let ttl = o["ttl"]
        .as_u64()
        .unwrap_or_else(|| panic!("original.ttl; {ctx}"));
    check("looped.ttl (original.ttl - 1)", &l["ttl"], (ttl - 1).into());
    check("looped.icmp_id", &l["icmp_id"], o["icmp_id"].clone());
    check("looped.icmp_seq", &l["icmp_seq"], o["icmp_seq"].clone());
    check("looped.id (IP id kept)", &l["id"], o["id"].clone());
    check("snat (masqueraded)", &e["snat"], true.into());
    assert!(
        e["packets"].as_u64().is_some_and(|n| (1..=3).contains(&n)),
        "packets is 1..=3 (the peer sent 3); {ctx}"
    );

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
            {"table": 255, "err": "EAGAIN"},
            {"table": 52, "err": null},
        ]),
    );

    let s = &e["suspect"];
    check("suspect.kind", &s["kind"], "route_del".into());
    check(
        "suspect.route.dst",
        &s["route"]["dst"],
        "192.168.1.0/24".into(),
    );
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
        advice.contains(LAN_HOST) && advice.contains("table 52"),
        "advice names {LAN_HOST} and table 52; {ctx}"
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
