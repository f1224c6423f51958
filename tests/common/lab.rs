//! The subnet-router lab (tests/lab/lab.sh): two namespaces rebuilt from
//! the incident of 2026-04-10, the tailnet peer (tests/bin/tailnet_peer.rs)
//! that pings through it, and their clean-up on drop.
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
