//! The lab's two network namespaces, driven through tests/lab/lab.sh (the
//! lab definition shared with tests/lab.rs), and deleted when the guard
//! drops (errors, panics and Ctrl-C included) unless the user asked to keep
//! them.

use crate::{process, workspace};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// tests/lab/lab.sh in this workspace.
pub fn script() -> PathBuf {
    workspace::root().join("tests").join("lab").join("lab.sh")
}

pub struct Lab {
    /// The subnet router: tailscale0, enp1s0, incusbr0, rules, table 52.
    pub router: String,
    /// The LAN host 192.168.1.90.
    pub lan: String,
    script: PathBuf,
    keep: bool,
}

impl Lab {
    /// `lab.sh up ROUTER LAN`: the healthy router. Refuses namespaces that
    /// already exist (they are not ours to delete).
    pub fn up(router: String, lan: String, keep: bool) -> Result<Lab> {
        let script = script();
        if !script.is_file() {
            bail!("the lab definition {} is missing", script.display());
        }
        for ns in [&router, &lan] {
            if Path::new("/run/netns").join(ns).exists() {
                bail!(
                    "network namespace {ns} already exists (left by an earlier `--keep` run?); \
                     remove it with `ip netns del {ns}`"
                );
            }
        }
        // From here on the guard owns the names: a failing or interrupted
        // `up` is cleaned up by lab.sh itself, and again (idempotently) on drop.
        let mut lab = Lab {
            router,
            lan,
            script,
            keep: false,
        };
        lab.run(&["up", &lab.router, &lab.lan])?;
        lab.keep = keep;
        Ok(lab)
    }

    /// `lab.sh <args>`, echoed, its output passed through.
    pub fn run(&self, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new("bash");
        cmd.arg(&self.script).args(args);
        println!("lab:   $ {}", self.shown(args));
        process::run_streamed(&format!("lab.sh {}", args[0]), &mut cmd)
    }

    /// `ip -n ROUTER <args>`, captured.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let ip = workspace::system_tool("ip")
            .context("iproute2's `ip` not found (apt-get install iproute2)")?;
        let mut cmd = Command::new(ip);
        cmd.args(["-n", &self.router]).args(args);
        let out = process::capture(&mut cmd)?;
        process::check_output("lab", &cmd, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// How to run lab.sh from the workspace root, for the user to copy.
    pub fn shown(&self, args: &[&str]) -> String {
        let rel = self
            .script
            .strip_prefix(workspace::root())
            .unwrap_or(&self.script);
        format!("{} {}", rel.display(), args.join(" "))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let out = Command::new("bash")
            .arg(&self.script)
            .args(["down", &self.router, &self.lan])
            .output();
        match out {
            Ok(o) if o.status.success() => println!(
                "lab: deleted network namespaces {} and {}",
                self.router, self.lan
            ),
            Ok(o) => eprintln!(
                "lab: WARNING: `{}` failed: {}",
                self.shown(&["down", &self.router, &self.lan]),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!(
                "lab: WARNING: cannot run `{}`: {e}",
                self.shown(&["down", &self.router, &self.lan])
            ),
        }
    }
}
