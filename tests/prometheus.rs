//! The shipped Prometheus alerting rules (dist/prometheus/tracer.rules.yml)
//! pass `promtool check rules`, and their unit tests
//! (tracer.rules.test.yml: every alert, firing and not, with the exact
//! labels and annotations that name the broken object and its remover)
//! pass `promtool test rules`. promtool comes with Debian's `prometheus`
//! package, which `cargo xtask test` installs.
use std::{path::PathBuf, process::Command};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool (Debian package prometheus) cannot run: {e}; `cargo xtask test` installs it")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_are_valid() {
    let out = promtool(&["check", "rules", "tracer.rules.yml"]);
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
}

#[test]
fn every_alert_passes_its_unit_tests() {
    let out = promtool(&["test", "rules", "tracer.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    // Each alert of the rules has a case in the tests.
    let rules = std::fs::read_to_string(dir().join("tracer.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir().join("tracer.rules.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no unit test"
        );
    }
}
