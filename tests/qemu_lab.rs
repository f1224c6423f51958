//! The packet path inside QEMU on Debian kernels: the broken incident lab
//! (tests/lab/lab.sh, with tests/bin/tailnet_peer.rs playing the tailnet
//! peer on the TUN) under `tracer watch --json --iface`, one guest boot per
//! kernel. The tracer, left to choose (`--attach auto`, no
//! `TRACER_PACKET_HOOK`), must watch tailscale0 with classic tc (a clsact
//! qdisc and direct-action filters, seen with `tc filter show`) on 5.10
//! and 6.1, which have no tcx, and with tcx links on 6.12; print nothing on
//! stderr; report the flush's removal of `throw 192.168.1.0/24` by its
//! process; and report the loop once, tied to that removal, with the same
//! fields as on this host (tests/lab.rs). Classic tc filters must be gone
//! once it has stopped. The lab's bash, nft and tc come from this host,
//! its drivers (TUN, veth, nftables, clsact, cls_bpf) from the kernel
//! package (`qemu_vm::LAB_MODULES`).
mod common;

use std::time::Duration;

use common::{
    lab::{self, BROKEN_ID, HEALTHY_ID, PeerRun},
    tracer_bin,
};
use qemu_vm::{DEBIAN_5_10, DEBIAN_6_1, DEBIAN_6_12, Initramfs, KernelSpec, ensure_kernel};
use serde_json::Value;

/// The router's and the LAN host's namespaces in the guest.
const ROUTER: &str = "lr";
const LAN: &str = "ll";

/// How long the guest waits for the loop line after the looping pings,
/// in 50 ms steps (TCG is slow; the host test allows 10 s).
const LOOP_WAIT_STEPS: u32 = 600;

/// The guest's part, in busybox sh: the lab up, the tracer started (its
/// ready line awaited by polling its output, never a fixed sleep), the
/// filters on tailscale0 shown, a healthy ping, the break (flush, then
/// the partial restore), three looping pings, the loop line awaited, the
/// tracer stopped with SIGINT, the filters shown again. Everything the
/// host checks is printed in sections.
fn guest_script() -> String {
    format!(
        r#"
set -u
mkdir -p /run/netns
R={ROUTER}
L={LAN}
lab() {{ /bin/bash /lab/lab.sh "$@"; }}
section() {{ # name command...
    name=$1; shift
    echo "=== BEGIN $name ==="
    "$@" 2>&1 || echo "failed ($?): $*"
    echo "=== END $name ==="
}}
filters() {{
    for dir in ingress egress; do
        section tc-$dir-$1 /usr/sbin/ip netns exec $R /usr/sbin/tc filter show dev tailscale0 $dir
    done
}}
peer() {{ # echo id, count
    /usr/sbin/ip netns exec $R /usr/local/bin/tailnet_peer --id $1 --count $2 \
        --interval-ms 100 --timeout-ms 2000
}}
lab up $R $L || {{ echo "lab.sh up failed"; exit 1; }}
/usr/local/bin/tracer watch --json --netns $R --iface $R:tailscale0 > /tmp/ev 2> /tmp/err &
pid=$!
while [ ! -s /tmp/ev ]; do
    if ! kill -0 $pid 2>/dev/null; then echo "tracer exited before ready:"; cat /tmp/err; exit 1; fi
    sleep 0.05
done
filters running
section peer-healthy peer {HEALTHY_ID} 1
lab flush $R || {{ echo "lab.sh flush failed"; exit 1; }}
lab restore $R || {{ echo "lab.sh restore failed"; exit 1; }}
section table-52 /usr/sbin/ip -n $R route show table 52
section peer-broken peer {BROKEN_ID} 3
n=0
while ! grep -q '"kind":"loop"' /tmp/ev && [ $n -lt {LOOP_WAIT_STEPS} ]; do sleep 0.05; n=$((n+1)); done
kill -INT $pid
wait $pid
rc=$?
echo "=== BEGIN tracer-exit ==="
echo "rc=$rc"
echo "=== END tracer-exit ==="
filters stopped
echo "=== BEGIN events ==="
cat /tmp/ev
echo "=== END events ==="
echo "=== BEGIN stderr ==="
cat /tmp/err
echo "=== END stderr ==="
lab down $R $L
"#
    )
}

fn lines(events: &[Value]) -> String {
    events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Boots `spec` with the lab and checks that tailscale0 was watched with
/// `hook` (`clsact` or `tcx`) and everything the module doc lists.
fn check(spec: KernelSpec, hook: &str) {
    let name = spec.name;
    let kernel = ensure_kernel(&spec).unwrap_or_else(|e| panic!("kernel {name}: {e:#}"));
    let lab_sh = std::fs::read(lab::lab_script()).expect("tests/lab/lab.sh");
    let vm = Initramfs::new(guest_script())
        .binary(tracer_bin())
        .binary(lab::peer_bin())
        .file_mode("/lab/lab.sh", lab_sh, 0o755)
        .lab_tools(spec.arch)
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let out = qemu_vm::run_scenario(&kernel, &vm, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    if let Err(e) = out.ensure_success() {
        panic!("{name}: {e:#}");
    }
    let section = |s: &str| out.section(s).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let events = out
        .section_json("events")
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let all = lines(&events);
    let stderr = section("stderr");
    eprintln!(
        "{name}: {} events; stderr: {:?}",
        events.len(),
        stderr.trim()
    );

    // The hook, as the ready line names it, and as tc shows it.
    let ready = &events[0];
    assert_eq!(ready["kind"], "ready", "{name}: first line: {ready}");
    let iface = format!("{ROUTER}:tailscale0");
    // By default the tc programs run on demand, as tcx links (6.12) or
    // classic filters (5.10, 6.1).
    let programs = "on_demand";
    assert_eq!(
        ready["ifaces"],
        serde_json::json!([{"iface": iface, "via": "tc", "hook": hook, "programs": programs}]),
        "{name}: tailscale0 watched with {hook}; ready: {ready}"
    );
    for dir in ["ingress", "egress"] {
        let prog = if dir == "ingress" {
            "pkt_rx_tc"
        } else {
            "pkt_tx_tc"
        };
        let running = section(&format!("tc-{dir}-running"));
        if hook == "clsact" {
            assert!(
                running.contains(prog) && running.contains("direct-action"),
                "{name}: tailscale0 {dir}: a direct-action filter running {prog}:\n{running}"
            );
        } else {
            assert!(
                !running.contains("pkt_"),
                "{name}: tailscale0 {dir}: no classic tc filter with tcx:\n{running}"
            );
        }
        let stopped = section(&format!("tc-{dir}-stopped"));
        assert!(
            !stopped.contains("pkt_"),
            "{name}: the tracer's {dir} filter outlived it on tailscale0:\n{stopped}"
        );
    }
    assert!(
        stderr.trim().is_empty(),
        "{name}: the tracer, left to choose its hooks, must print nothing on stderr:\n{stderr}"
    );
    assert_eq!(
        section("tracer-exit").trim(),
        "rc=0",
        "{name}: the tracer's exit status after SIGINT"
    );

    // The lab did what it does on this host.
    PeerRun::parse(section("peer-healthy"), lab::V4).assert_replied(1);
    let table52 = section("table-52");
    assert!(
        !table52.contains("192.168.1.0/24") && table52.contains("throw 10.10.10.0/24"),
        "{name}: after flush and restore, table 52 keeps only throw 10.10.10.0/24:\n{table52}"
    );
    let peer = PeerRun::parse(section("peer-broken"), lab::V4);
    peer.assert_looped(3);

    // The flush's removal, by its process, and the one loop tied to it.
    let removal = events
        .iter()
        .find(|e| lab::is_throw_removal(e, ROUTER))
        .unwrap_or_else(|| {
            panic!(
                "{name}: no route_del of throw 192.168.1.0/24 table 52 by {}; events:\n{all}",
                lab::FLUSH_COMM
            )
        });
    let loops: Vec<&Value> = events.iter().filter(|e| e["kind"] == "loop").collect();
    assert_eq!(
        loops.len(),
        1,
        "{name}: one loop event for the one looping flow; events:\n{all}\npeer:\n{}",
        peer.stdout
    );
    let e = loops[0];
    lab::check_loop(e, ROUTER, &peer.stdout, hook);
    let suspect = &e["suspect"];
    assert_eq!(
        (
            &suspect["ts"],
            &suspect["route"],
            &suspect["process"]["pid"]
        ),
        (
            &removal["ts"],
            &removal["route"],
            &removal["process"]["pid"]
        ),
        "{name}: the loop's suspect is the flush's removal: {removal}\nloop: {e}"
    );
    eprintln!(
        "{name}: tailscale0 watched with {hook}; removal by {} (pid {}) and the loop reported; \
         VM total {:?} (boot to scenario {:?})",
        removal["process"]["comm"], removal["process"]["pid"], out.total_time, out.boot_time
    );
}

/// Linux 5.10: no tcx, so classic tc.
#[test]
fn debian_5_10() {
    check(DEBIAN_5_10, "clsact");
}

/// Linux 6.1: no tcx (6.6), so classic tc.
#[test]
fn debian_6_1() {
    check(DEBIAN_6_1, "clsact");
}

/// Linux 6.12: tcx links.
#[test]
fn debian_6_12() {
    check(DEBIAN_6_12, "tcx");
}
