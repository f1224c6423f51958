//! The tailnet peer (tests/bin/tailnet_peer.rs) run in the router's
//! namespace: its lines are echoed as they come, and its summary line is
//! parsed for the lab to check what happened.

use crate::{process, workspace};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// What the peer counted (`peer: summary sent=3 replies=0 looped=3 ...`).
pub struct Summary(HashMap<String, u64>);

impl Summary {
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

/// Parses the peer's `peer: summary k=v ...` line.
pub fn parse_summary(line: &str) -> Option<Summary> {
    let rest = line.strip_prefix("peer: summary ")?;
    let map = rest
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect();
    Some(Summary(map))
}

/// `ip netns exec <router> <peer> --id ID --count N --interval-ms 200`.
pub fn ping(peer: &Path, router: &str, id: u16, count: u16) -> Result<Summary> {
    let ip = workspace::system_tool("ip")
        .context("iproute2's `ip` not found (apt-get install iproute2)")?;
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "exec", router])
        .arg(peer)
        .args(["--id", &id.to_string(), "--count", &count.to_string()])
        .args(["--interval-ms", "200"]);
    println!("lab:   $ {}", process::display(&cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", peer.display()))?;
    let stdout = child.stdout.take().context("peer stdout")?;
    let mut summary = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the peer's output")?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if let Some(s) = parse_summary(&line) {
            summary = Some(s);
        }
    }
    let status = child.wait().context("waiting for the peer")?;
    if !status.success() {
        bail!("the tailnet peer failed ({status}); its error is above");
    }
    summary.context("the tailnet peer printed no summary line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let s =
            parse_summary("peer: summary sent=3 replies=0 looped=3 other=1 unanswered=0").unwrap();
        assert_eq!(
            (s.get("sent"), s.get("replies"), s.get("looped")),
            (3, 0, 3)
        );
        assert!(parse_summary("peer: got 1.2.3.4 > 5.6.7.8 proto 17 ttl 1").is_none());
    }
}
