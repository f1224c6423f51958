//! `cargo xtask lab` (also `cargo xtask demo`): the incident of 2026-04-10
//! rebuilt in two throw-away network namespaces, played under
//! `tracer watch --iface ROUTER:tailscale0`.
//!
//! A Tailscale subnet router (`tl-<pid>-r`: TUN tailscale0, rules
//! 5210-5270, table 52 with its throw routes, tailscaled's masquerade) and a
//! LAN host 192.168.1.90 (`tl-<pid>-l`) are built by tests/lab/lab.sh, the
//! lab definition the integration tests (tests/lab.rs) share. The tailnet
//! peer 100.119.140.15 (tests/bin/tailnet_peer.rs) pings the LAN host through
//! the router; then a networkd-style flush takes the rules and
//! `throw 192.168.1.0/24`, a tailscaled-style restore brings back only the
//! rules, and the peer's pings loop back out of tailscale0, which the tracer
//! reports. The namespaces are always deleted at the end (errors, panics and
//! Ctrl-C included) unless `--keep` is given.

mod peer;
mod router;
pub mod signal;
mod tracer;

use crate::{build, workspace};
use anyhow::{Context, Result, bail};
use router::Lab;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracer::{Tracer, Wait};

/// How long the tracer may take to attach and print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the loop line may take after the peer saw its requests loop.
const LOOP_TIMEOUT: Duration = Duration::from_secs(10);
/// With `--healthy`: how long the tracer is given to (wrongly) report a loop.
const QUIET_WINDOW: Duration = Duration::from_secs(2);

/// Echo ids of the two flows. They differ so that the broken pings do not
/// reuse the healthy flow's conntrack entry (whose NAT binding would give
/// the looped copies the LAN-side address instead of 100.98.98.126).
const HEALTHY_ID: u16 = 1;
const BROKEN_ID: u16 = 7;
const HEALTHY_PINGS: u16 = 2;
const BROKEN_PINGS: u16 = 3;

#[derive(clap::Args)]
pub struct LabArgs {
    /// Pass --json to the tracer (one JSON object per line).
    #[arg(long)]
    pub json: bool,
    /// Only the healthy router: skip the flush and the partial restore (no loop to report).
    #[arg(long)]
    pub healthy: bool,
    /// Have the tracer write the looping packets to FILE (its --pcap FILE).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Leave the two network namespaces in place at the end (their names are printed).
    #[arg(long)]
    pub keep: bool,
}

/// One narrated step.
macro_rules! say {
    ($($arg:tt)*) => { println!("lab: {}", format!($($arg)*)) };
}

pub fn run(args: &LabArgs) -> Result<()> {
    if !workspace::is_root() {
        bail!(
            "the lab needs root (it creates network namespaces and loads eBPF programs): run it as root, e.g.\n  \
             sudo -E env \"PATH=$PATH\" cargo xtask lab"
        );
    }
    say!("building the release tracer and the tailnet peer (after checking the set-up)");
    build::run()?;
    let meta = workspace::metadata()?;
    let tracer_bin = workspace::tracer_bin(&meta);
    let peer_bin = meta
        .target_directory
        .as_std_path()
        .join("release")
        .join("tailnet_peer");
    if !peer_bin.is_file() {
        bail!(
            "{} does not exist after the release build (tests/Cargo.toml declares it)",
            peer_bin.display()
        );
    }
    let pcap = match &args.pcap {
        Some(p) => Some(std::path::absolute(p).with_context(|| format!("--pcap {}", p.display()))?),
        None => None,
    };

    signal::install();
    let pid = std::process::id();
    let (r, l) = (format!("tl-{pid}-r"), format!("tl-{pid}-l"));
    say!(
        "setting up a healthy Tailscale subnet router in namespace {r} (tailscale0 100.98.98.126, enp1s0 \
         192.168.1.1/24, rules 5210-5270, table 52 with throw 10.10.10.0/24 and throw 192.168.1.0/24, \
         masquerade of tailnet traffic) and the LAN host 192.168.1.90 in {l}"
    );
    let lab = Lab::up(r, l, args.keep)?;
    let result = play(args, &lab, &tracer_bin, &peer_bin, pcap.as_deref());
    if args.keep {
        keep_hints(&lab, &peer_bin);
    }
    result
}

/// The steps after the set-up, in the lab `lab`.
fn play(
    args: &LabArgs,
    lab: &Lab,
    tracer_bin: &Path,
    peer_bin: &Path,
    pcap: Option<&Path>,
) -> Result<()> {
    let r = lab.router.as_str();
    check_interrupt()?;

    let iface = format!("{r}:tailscale0");
    say!("starting `tracer watch` on {iface} and waiting for its ready line");
    let mut targs: Vec<OsString> = ["--netns", r, "--iface", &iface]
        .into_iter()
        .map(OsString::from)
        .collect();
    if args.json {
        targs.push("--json".into());
    }
    if let Some(p) = pcap {
        targs.push("--pcap".into());
        targs.push(p.into());
    }
    // The session's events as JSON lines too, for `explain` afterwards.
    let journal = std::env::temp_dir().join(format!("tracer-lab-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&journal);
    targs.push("--output".into());
    targs.push(journal.clone().into());
    let mut tracer = Tracer::start(tracer_bin, &targs)?;
    if let Wait::TimedOut =
        tracer.wait_for("its ready line", tracer::is_ready_line, READY_TIMEOUT)?
    {
        bail!("the tracer printed no ready line within {READY_TIMEOUT:?}");
    }
    check_interrupt()?;

    say!(
        "healthy router: tailnet peer 100.119.140.15 pings LAN host 192.168.1.90 through tailscale0 \
         (echo id {HEALTHY_ID}); the echo replies come back"
    );
    let healthy = peer::ping(peer_bin, r, HEALTHY_ID, HEALTHY_PINGS)?;
    if healthy.get("replies") != u64::from(HEALTHY_PINGS) {
        bail!(
            "the healthy router answered {} of {HEALTHY_PINGS} pings: the lab itself is broken \
             (see the peer's lines above; `{}` shows its state)",
            healthy.get("replies"),
            lab.shown(&["show", r])
        );
    }
    check_interrupt()?;

    if args.healthy {
        say!(
            "--healthy: no flush; giving the tracer {QUIET_WINDOW:?} to report a loop (it should not)"
        );
        let unexpected = matches!(
            tracer.wait_for("a loop line", tracer::is_loop_line, QUIET_WINDOW)?,
            Wait::Found
        );
        say!("stopping the tracer (SIGINT)");
        stop(&mut tracer)?;
        if unexpected {
            bail!("the tracer reported a loop on a healthy router (the line is above)");
        }
        say!("done");
        println!("{}", healthy_explanation(r));
    } else {
        say!(
            "systemd-networkd restarts and flushes \"foreign\" rules: rules 5210-5270 go, and throw \
             192.168.1.0/24 leaves table 52 with them (ip runs as `systemd-networkd`)"
        );
        lab.run(&["flush", r])?;
        check_interrupt()?;
        say!(
            "tailscaled: \"somebody (likely systemd-networkd) deleted ip rules; restoring Tailscale's\": \
             it re-adds its rules, not the throw route (ip runs as `tailscaled`)"
        );
        lab.run(&["restore", r])?;
        let table52 = lab.ip(&["route", "show", "table", "52"])?;
        let table52: Vec<&str> = table52.lines().map(str::trim).collect();
        say!(
            "table 52 is now: {} (no throw 192.168.1.0/24)",
            table52.join(" | ")
        );
        check_interrupt()?;

        say!(
            "the peer pings 192.168.1.90 again (echo id {BROKEN_ID}): the router sends each request back \
             into tailscale0, from its own tailnet address 100.98.98.126"
        );
        let broken = peer::ping(peer_bin, r, BROKEN_ID, BROKEN_PINGS)?;
        if broken.get("looped") == 0 {
            bail!(
                "the broken router did not loop (the peer saw none of its requests come back): the lab \
                 does not reproduce the incident; `{}` shows its state",
                lab.shown(&["show", r])
            );
        }

        say!("waiting (up to {LOOP_TIMEOUT:?}) for the tracer's loop line");
        let found = matches!(
            tracer.wait_for("a loop line", tracer::is_loop_line, LOOP_TIMEOUT)?,
            Wait::Found
        );
        say!("stopping the tracer (SIGINT)");
        stop(&mut tracer)?;
        if !found {
            bail!(
                "the tracer reported no loop within {LOOP_TIMEOUT:?}, although the peer saw {} of its \
                 requests come back on tailscale0",
                broken.get("looped")
            );
        }
        println!("{}", loop_explanation(r));
        say!(
            "after the fact, from the session's events ({}): `tracer report` groups the changes into \
             episodes, with what was restored and what is still missing",
            journal.display()
        );
        let mut report = std::process::Command::new(tracer_bin);
        report.arg("report").arg(&journal);
        crate::process::run_streamed("tracer report", &mut report)?;
        say!(
            "`tracer explain` asks the kernel how 192.168.1.90 is routed for a packet from tailscale0 \
             now, and reads from the events who changed table 52"
        );
        let mut explain = std::process::Command::new(tracer_bin);
        explain
            .args([
                "explain",
                "192.168.1.90",
                "--iif",
                "tailscale0",
                "--netns",
                r,
                "--journal",
            ])
            .arg(&journal);
        crate::process::run_streamed("tracer explain", &mut explain)?;
        say!("done");
    }
    let _ = std::fs::remove_file(&journal);
    if let Some(p) = pcap {
        if p.is_file() {
            say!(
                "the tracer wrote the looping packets to {} (read it with `tcpdump -nr {}`)",
                p.display(),
                p.display()
            );
        } else {
            eprintln!(
                "lab: WARNING: --pcap {}: the tracer wrote no file",
                p.display()
            );
        }
    }
    Ok(())
}

fn stop(tracer: &mut Tracer) -> Result<()> {
    let status = tracer.stop()?;
    if !status.success() {
        bail!("the tracer exited with {status} after SIGINT (expected a clean exit)");
    }
    Ok(())
}

fn check_interrupt() -> Result<()> {
    if signal::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

fn loop_explanation(router: &str) -> String {
    format!(
        "lab: What the lines show: the peer's echo requests to 192.168.1.90 came back into tailscale0 from \
         100.98.98.126, the router's own tailnet address (`peer: got ... (looped back)`). The router routed \
         them out of the interface they came in on and masqueraded them, which is the duplicated packet \
         tcpdump showed on the incident's server; nothing reached enp1s0. The tracer's loop line says the \
         same from inside {router}: the packet that came in, the copy that went back out, the route lookup \
         that sent it back (rule 5270, table 52, `default dev tailscale0`, because nothing in table 52 throws \
         192.168.1.0/24 back to the main table any more), and the suspect, the removal of `throw \
         192.168.1.0/24` from table 52 by systemd-network seconds earlier, with its pid. The rule and route \
         changes reported before it are the flush and tailscaled's partial restore, each with its process. \
         On the incident's server this would have turned 5 h 49 min of outage into one line; the fix is \
         to put the throw route back (`ip route add throw 192.168.1.0/24 table 52`, or `systemctl restart \
         tailscaled`) and to stop networkd flushing foreign rules (ManageForeignRoutingPolicyRules=no)."
    )
}

fn healthy_explanation(router: &str) -> String {
    format!(
        "lab: What the lines show: with `throw 192.168.1.0/24` in table 52 the lookup for 192.168.1.90 falls \
         through to the main table, so the peer's requests left {router} on enp1s0 (masqueraded) and the \
         LAN host's replies came back into tailscale0. The tracer saw every packet on tailscale0 and \
         reported no loop. Run `cargo xtask lab` without --healthy to see the incident."
    )
}

fn keep_hints(lab: &Lab, peer_bin: &Path) {
    let (r, l) = (&lab.router, &lab.lan);
    say!("--keep: the namespaces stay: router {r}, LAN host {l}. To look around:");
    say!("  ip -n {r} rule; ip -n {r} route show table 52");
    say!(
        "  {} && {}    # break it (if not yet)",
        lab.shown(&["flush", r]),
        lab.shown(&["restore", r])
    );
    say!(
        "  ip netns exec {r} tcpdump -ni tailscale0 icmp    # in one shell; in another, the peer:"
    );
    say!(
        "  ip netns exec {r} {} --id 9 --count 3",
        peer_bin.display()
    );
    say!("  ip -n {r} route add throw 192.168.1.0/24 table 52    # the fix");
    say!("remove them with: {}", lab.shown(&["down", r, l]));
}
