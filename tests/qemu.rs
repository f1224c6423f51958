//! The attribution scenario inside QEMU on Debian kernels, where fentry and
//! kprobes attach: `tracer watch --attach fentry` and `--attach kprobe`
//! must report the same events as the tracepoint path does on this host.
mod common;

use std::time::Duration;

use common::{nlraw_bin, scenario, scenario_script, tracer_bin};
use qemu_vm::{DEBIAN_6_1, DEBIAN_6_12, Initramfs, KernelSpec, ensure_kernel, run_scenario};

/// Start the tracer, wait for its ready line (polling its output file, never
/// a fixed sleep), run the scenario, stop the tracer with SIGINT and print
/// its JSON lines in a section.
const VM_SCRIPT: &str = r#"
set -u
mkdir -p /run/netns
/usr/sbin/ip netns add scn
/usr/local/bin/tracer watch --json --attach MODE --netns scn > /tmp/ev 2> /tmp/err &
pid=$!
while [ ! -s /tmp/ev ]; do
    if ! kill -0 $pid 2>/dev/null; then echo "tracer exited before ready:"; cat /tmp/err; exit 1; fi
    sleep 0.05
done
sh /scenario.sh scn /usr/local/bin/nlraw /usr/sbin/ip || { echo "scenario failed"; cat /tmp/err; exit 1; }
# Wait for the link-down removal to be reported, then stop.
n=0
while ! grep -q '"cause":"link_down"' /tmp/ev && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done
kill -INT $pid
wait $pid
rc=$?
echo "=== BEGIN events ==="
cat /tmp/ev
echo "=== END events ==="
echo "=== BEGIN stderr ==="
cat /tmp/err
echo "=== END stderr ==="
exit $rc
"#;

fn check(spec: &KernelSpec, mode: &str) {
    let kernel = ensure_kernel(spec).unwrap_or_else(|e| panic!("kernel {}: {e:#}", spec.name));
    let script = VM_SCRIPT.replace("MODE", mode);
    let vm = Initramfs::new(&script)
        .binary(tracer_bin())
        .binary(nlraw_bin())
        .file(
            "/scenario.sh",
            std::fs::read(scenario_script()).expect("scenario.sh"),
        );
    let out = run_scenario(&kernel, &vm, Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{} {mode}: {e:#}", spec.name));
    if let Err(e) = out.ensure_success() {
        panic!("{} {mode}: {e:#}", spec.name);
    }
    let events = out
        .section_json("events")
        .unwrap_or_else(|e| panic!("{} {mode}: {e:#}", spec.name));
    eprintln!(
        "{} --attach {mode}: {} events, VM total {:?}",
        spec.name,
        events.len(),
        out.total_time
    );
    scenario::check(&events, "scn", mode);
    // The ready line names the kernel functions attached.
    let ready = &events[0];
    assert_eq!(
        ready["functions"]["route4_del"], "fib_table_delete",
        "{ready}"
    );
    assert_eq!(ready["functions"]["route6_del"], "fib6_del", "{ready}");
    assert!(
        ready["functions"]["rule_del"]
            .as_str()
            .is_some_and(|f| f.contains("delrule")),
        "{ready}"
    );
}

#[test]
fn debian_6_12_fentry() {
    check(&DEBIAN_6_12, "fentry");
}

#[test]
fn debian_6_12_kprobe() {
    check(&DEBIAN_6_12, "kprobe");
}

#[test]
fn debian_6_1_fentry() {
    check(&DEBIAN_6_1, "fentry");
}

#[test]
fn debian_6_1_kprobe() {
    check(&DEBIAN_6_1, "kprobe");
}
