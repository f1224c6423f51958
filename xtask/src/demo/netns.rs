//! A throw-away network namespace, deleted when the guard drops (also on
//! error, panic and Ctrl-C), and `ip -n NS ...` inside it.

use crate::{process, workspace};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

pub struct Netns {
    pub name: String,
    ip: PathBuf,
}

impl Netns {
    /// `ip netns add <name>`.
    pub fn create(name: String) -> Result<Netns> {
        let ip = workspace::system_tool("ip")
            .context("iproute2's `ip` not found (apt-get install iproute2)")?;
        let mut cmd = Command::new(&ip);
        cmd.args(["netns", "add", &name]);
        println!("demo:   $ {}", process::display(&cmd));
        let out = process::capture(&mut cmd)?;
        process::check_output("demo: creating the network namespace", &cmd, &out)?;
        Ok(Netns { name, ip })
    }

    /// `ip -n <ns> <args>`, echoed, failing with ip's stderr.
    pub fn ip(&self, args: &str) -> Result<()> {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["-n", &self.name]).args(args.split_whitespace());
        println!("demo:   $ ip -n {} {args}", self.name);
        let out = process::capture(&mut cmd)?;
        process::check_output("demo step", &cmd, &out)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                println!("demo: deleted network namespace {}", self.name)
            }
            Ok(o) => eprintln!(
                "demo: WARNING: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!(
                "demo: WARNING: cannot run `ip netns del {}`: {e}",
                self.name
            ),
        }
    }
}
