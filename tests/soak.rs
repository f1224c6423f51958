//! The soak benchmark in its CI version (issue 16 part 3): `bench/soak.sh
//! 120` runs `record`, `guard` and `watch --iface` for two minutes under
//! rule and route churn in 4 namespaces, link flaps, namespaces created and
//! destroyed, the incident lab's looping flow switched on and off, and a
//! journal disk that fills and empties; every check of its verdict (RSS,
//! descriptors, BPF objects, changes reported and journaled against the
//! kernel's count, loops) must pass. Needs root, bpftool, nft and python3.
//!
//! SOAK_RATE sets the churn (changes/s in all; default [`RATE`]), as for
//! the script.
mod common;

use std::{path::PathBuf, process::Command};

/// The churn of the CI version, changes/s in all.
const RATE: &str = "2000";

#[test]
fn two_minutes_of_soak_pass_every_check() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("tracer-it-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let rate = std::env::var("SOAK_RATE").unwrap_or_else(|_| RATE.to_string());
    // The script deletes its namespaces and unmounts its disk itself, on
    // every exit (a trap), and names them after its own pid.
    let run = Command::new("bash")
        .arg(root.join("bench/soak.sh"))
        .arg("120")
        .arg(common::tracer_bin())
        .env("TAILNET_PEER", env!("CARGO_BIN_EXE_tailnet_peer"))
        .env("SOAK_TALLY", env!("CARGO_BIN_EXE_soak_tally"))
        .env("SOAK_OUT", &out)
        .env("SOAK_RATE", &rate)
        .output()
        .expect("run bench/soak.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}");
    let verdict: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("PASS ") || l.starts_with("FAIL "))
        .collect();
    let failed: Vec<&&str> = verdict.iter().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        verdict.len() > 10,
        "bench/soak.sh gave no verdict ({}); output in {}\nstderr:\n{stderr}",
        run.status,
        out.display()
    );
    assert!(
        failed.is_empty() && run.status.success(),
        "the soak failed ({}) at {rate} changes/s: {} of {} checks; output in {}\n{}\nevery check:\n{}\nstderr:\n{stderr}",
        run.status,
        failed.len(),
        verdict.len(),
        out.display(),
        failed
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        verdict.join("\n"),
    );
    let _ = std::fs::remove_dir_all(&out);
}
