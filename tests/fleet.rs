//! A fleet of three routers, each the incident lab with its own `tracer
//! watch --iface ROUTER:tailscale0 --metrics` on a loopback port, watched by
//! a real Prometheus (started here with a temporary configuration and the
//! shipped rules, dist/prometheus/tracer.rules.yml) and a real Alertmanager
//! that posts to a webhook this test listens on. One router is broken as in
//! the incident: within the scrape interval plus the evaluation interval
//! plus 5 s, the loop alert and the missing-route alert arrive for that
//! router only, their annotations naming the removed route, who removed it
//! and the loop; healed, both resolve. Every query of the shipped Grafana
//! dashboard runs on that Prometheus. (Issue 17.) Needs root, prometheus
//! and prometheus-alertmanager (Debian packages `cargo xtask test`
//! installs).
mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{
    TempDir, Tracer,
    lab::{BROKEN_ID, Lab},
};
use serde_json::Value;

/// Prometheus scrapes and evaluates every second; Alertmanager waits a
/// second before a group's first notification.
const INTERVAL_S: u64 = 1;
/// The bound the issue sets: scrape interval + evaluation interval + 5 s.
const ALERT_WITHIN: Duration = Duration::from_secs(2 * INTERVAL_S + 5);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service started here, killed on drop.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &str, args: &[String], log: &Path) -> Service {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin} cannot run ({e}): Debian packages prometheus and prometheus-alertmanager; `cargo xtask test` installs them")
        });
    Service(child)
}

/// Wait until `GET http://127.0.0.1:PORT/PATH` answers 200.
fn wait_ready(port: u16, path: &str, what: &str, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if get(port, path).is_some_and(|(status, _)| status.contains(" 200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} not ready on port {port} within 30 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// `GET http://127.0.0.1:PORT/PATH`: its status line and body.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    Some((status, body.to_string()))
}

/// `GET http://127.0.0.1:PORT/PATH`'s JSON body.
fn get_json(port: u16, path: &str) -> Option<Value> {
    serde_json::from_str(&get(port, path)?.1).ok()
}

/// Wait until Prometheus scrapes every target successfully and knows its
/// Alertmanager (its discovery passes new targets on every 5 s): only then
/// do alert delays measure the fleet, not the engines starting.
fn wait_settled(prom: u16, targets: usize) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let up = get_json(prom, "/api/v1/targets").is_some_and(|v| {
            let t = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            t.len() == targets && t.iter().all(|t| t["health"] == "up")
        });
        let am = get_json(prom, "/api/v1/alertmanagers").is_some_and(|v| {
            v["data"]["activeAlertmanagers"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        });
        if up && am {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("Prometheus did not scrape all {targets} tracers and find its Alertmanager within 30 s");
}

/// The webhook: each POST's JSON body, as Alertmanager sends it.
fn webhook() -> (u16, mpsc::Receiver<Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().map_while(Result::ok) {
            let mut r = BufReader::new(conn);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    (port, rx)
}

fn rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dist/prometheus/tracer.rules.yml")
        .canonicalize()
        .unwrap()
}

/// Prometheus and Alertmanager on free loopback ports, their data in `dir`.
fn engines(dir: &TempDir, targets: &[String], hook: u16) -> (Service, Service, u16) {
    let am_port = free_port();
    let am_conf = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_conf,
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, instance]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let am_log = dir.path().join("alertmanager.log");
    let am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_conf.display()),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &am_log,
    );
    wait_ready(am_port, "/-/ready", "Alertmanager", &am_log);
    let prom_port = free_port();
    let conf = dir.path().join("prometheus.yml");
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: {INTERVAL_S}s\n  evaluation_interval: {INTERVAL_S}s\n\
             rule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{am_port}\"]\n\
             scrape_configs:\n  - job_name: tracer\n    static_configs:\n      - targets: [{}]\n",
            rules().display(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", conf.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &prom_log,
    );
    wait_ready(prom_port, "/-/ready", "Prometheus", &prom_log);
    wait_settled(prom_port, targets.len());
    (prom, am, prom_port)
}

/// The alerts of the webhook's posts, as (status, alertname, instance,
/// annotations.description), collected until `done` holds or `within`
/// passes.
fn collect(
    rx: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> bool {
    let start = Instant::now();
    while !done(seen) {
        let Some(left) = within.checked_sub(start.elapsed()) else {
            return false;
        };
        if let Ok(post) = rx.recv_timeout(left) {
            let alerts = post["alerts"].as_array().cloned().unwrap_or_default();
            for a in &alerts {
                eprintln!(
                    "fleet: +{:?} {} {} {}",
                    start.elapsed(),
                    a["status"],
                    a["labels"]["alertname"],
                    a["labels"]["instance"]
                );
            }
            seen.extend(alerts);
        }
    }
    true
}

/// `s` as a URL query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every query of the shipped Grafana dashboard (dist/grafana/tracer.json)
/// runs on the real Prometheus, and the loop panel shows the broken router.
fn dashboard_queries_answer(prom: u16, instance: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana/tracer.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m");
            let v = get_json(prom, &format!("/api/v1/query?query={}", url_encode(&expr)))
                .unwrap_or_else(|| panic!("no answer to {expr}"));
            assert_eq!(v["status"], "success", "{}: {expr}: {v}", p["title"]);
            if p["title"] == "Routers with a forwarding loop" {
                let r = v["data"]["result"].as_array().unwrap();
                assert_eq!(r.len(), 1, "{expr}: {v}");
                assert_eq!(r[0]["metric"]["instance"], instance, "{v}");
            }
        }
    }
}

fn has(alerts: &[Value], status: &str, name: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["status"] == status && a["labels"]["alertname"] == name)
}

#[test]
fn the_broken_router_alone_alerts_with_its_cause_and_resolves_when_healed() {
    let dir = TempDir::created("fleet", "engines");
    let labs: Vec<Lab> = (0..3).map(|_| Lab::up()).collect();
    let ports: Vec<u16> = labs.iter().map(|_| free_port()).collect();
    let tracers: Vec<Tracer> = labs
        .iter()
        .zip(&ports)
        .map(|(lab, port)| {
            Tracer::start(&[
                "--netns",
                &lab.router,
                "--iface",
                &lab.iface("tailscale0"),
                "--metrics",
                &format!("127.0.0.1:{port}"),
                "--loop-end-secs",
                "2",
            ])
        })
        .collect();
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let (hook, rx) = webhook();
    let (_prom, _am, prom_port) = engines(&dir, &targets, hook);

    // The second router breaks as in the incident; its peer's pings loop
    // (in the background, for as long as the alerts take).
    let broken = &labs[1];
    let instance = &targets[1];
    broken.break_it();
    let router = broken.router.clone();
    let pinger = std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", &router])
            .arg(common::lab::peer_bin())
            .args(["--src", common::lab::PEER, "--dst", common::lab::LAN_HOST])
            .args(["--id", &BROKEN_ID.to_string(), "--count", "60"])
            .args(["--interval-ms", "100", "--timeout-ms", "2000"])
            .output()
            .expect("run tailnet_peer")
    });
    tracers[1].wait_for("the loop", Duration::from_secs(10), |e| e["kind"] == "loop");
    let looped_at = Instant::now();
    let mut alerts = Vec::new();
    let both_firing = |a: &[Value]| {
        has(a, "firing", "TracerRoutingLoop") && has(a, "firing", "TracerRouteMissing")
    };
    let fired = collect(&rx, &mut alerts, ALERT_WITHIN, both_firing);
    let took = looped_at.elapsed();
    assert!(
        fired,
        "within {ALERT_WITHIN:?} of the loop, the webhook got only: {alerts:#?}"
    );
    eprintln!("fleet: both alerts {took:?} after the loop was reported");
    for a in &alerts {
        assert_eq!(
            a["labels"]["instance"],
            instance.as_str(),
            "only the broken router: {a}"
        );
    }
    let alert = |name: &str| {
        alerts
            .iter()
            .find(|a| a["status"] == "firing" && a["labels"]["alertname"] == name)
            .unwrap()
            .clone()
    };
    let lp = alert("TracerRoutingLoop");
    let by = lp["labels"]["by"].as_str().unwrap_or_default();
    assert!(by.starts_with("systemd-network (pid "), "{lp}");
    assert_eq!(
        lp["annotations"]["description"],
        format!(
            "router {instance}: throw 192.168.1.0/24 removed from table 52 by {by}; loop on tailscale0 to 192.168.1.90 (netns {})",
            broken.router
        ),
        "{lp}"
    );
    assert_eq!(lp["labels"]["dst"], "192.168.1.90");
    assert_eq!(lp["labels"]["iface"], "tailscale0");
    let missing = alert("TracerRouteMissing");
    let d = missing["annotations"]["description"].as_str().unwrap();
    assert!(
        d.starts_with(&format!(
            "router {instance}: throw 192.168.1.0/24 removed from table 52 by systemd-network (pid "
        )),
        "{missing}"
    );
    assert_eq!(missing["labels"]["table"], "52");
    dashboard_queries_answer(prom_port, instance);

    // Healed: the throw route back, the pings over; the loop ends, the
    // route is no longer missing, and both alerts resolve.
    common::run(
        "ip",
        &[
            "-n",
            &broken.router,
            "route",
            "add",
            "throw",
            "192.168.1.0/24",
            "table",
            "52",
        ],
    );
    let out = pinger.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both_resolved = |a: &[Value]| {
        has(a, "resolved", "TracerRoutingLoop") && has(a, "resolved", "TracerRouteMissing")
    };
    assert!(
        collect(&rx, &mut alerts, Duration::from_secs(30), both_resolved),
        "not resolved after healing: {alerts:#?}"
    );
    for t in tracers {
        t.stop();
    }
}
