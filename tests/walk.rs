//! `explain`'s offline walk held against the kernel: `tracer walk-check`
//! builds random rule and route sets (priorities, selectors, goto,
//! suppress_prefixlength, throw/unreachable/blackhole/prohibit routes and
//! rules, tables 100-103 and main, metrics, IPv4 and IPv6) in a namespace
//! of this test's own, and compares the walk with RTM_GETROUTE for random
//! destinations, sources, input interfaces and marks. Every difference is
//! printed with its case; the seed is printed (TRACER_WALK_SEED replays
//! one). Needs root.
mod common;

use std::process::Command;

#[test]
fn the_offline_walk_agrees_with_the_kernel() {
    let ns = common::Netns::new("walk");
    let mut args = vec![
        "walk-check".to_string(),
        "--netns".into(),
        ns.name.clone(),
        "--cases".into(),
        "6000".into(),
        "--rounds".into(),
        "60".into(),
    ];
    if let Ok(seed) = std::env::var("TRACER_WALK_SEED") {
        args.extend(["--seed".into(), seed]);
    }
    let out = Command::new(common::tracer_bin())
        .args(&args)
        .output()
        .expect("run tracer walk-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "walk-check failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains(", 6000 cases, 0 differences"),
        "at least 1,000 cases, none different: {last}"
    );
}
