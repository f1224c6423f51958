//! `cargo xtask demo`: setup and release build, then (as root) a miniature
//! of a real routing incident played under `tracer watch` in a fresh
//! network namespace `tracer-demo-<pid>`, which is always deleted at the end
//! (errors, panics and Ctrl-C included).

mod incident;
mod netns;
pub mod signal;
mod tracer;

use crate::{build, workspace};
use anyhow::{Result, bail};
use netns::Netns;
use std::time::Duration;
use tracer::{Tracer, Wait};

/// How long the tracer may take to attach and print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for the line about the last change (link down).
const LAST_LINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Pass --json to the tracer (one JSON object per line).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if !workspace::is_root() {
        bail!(
            "the demo needs root (it creates a network namespace and loads eBPF programs): run it as root, e.g.\n  \
             sudo -E env \"PATH=$PATH\" cargo xtask demo"
        );
    }
    build::run()?;
    let bin = workspace::tracer_bin(&workspace::metadata()?);

    signal::install();
    let ns = Netns::create(format!("tracer-demo-{}", std::process::id()))?;
    println!("demo: building the stage in network namespace {}", ns.name);
    for cmd in incident::PREPARE {
        ns.ip(cmd)?;
    }
    check_interrupt()?;

    println!("demo: starting the tracer and waiting for its ready line");
    let mut tracer = Tracer::start(&bin, &ns.name, args.json)?;
    if let Wait::TimedOut =
        tracer.wait_for("its ready line", tracer::is_ready_line, READY_TIMEOUT)?
    {
        bail!("the tracer printed no ready line within {READY_TIMEOUT:?}");
    }

    for step in incident::STEPS {
        check_interrupt()?;
        println!("demo: {}", step.narrative);
        for cmd in step.commands {
            ns.ip(cmd)?;
        }
    }

    match tracer.wait_for(
        "a link_down line",
        tracer::is_link_down_line,
        LAST_LINE_TIMEOUT,
    )? {
        Wait::Found => {}
        Wait::TimedOut => {
            eprintln!(
                "demo: WARNING: no line about link_down from the tracer within {LAST_LINE_TIMEOUT:?}; stopping it"
            )
        }
    }
    let status = tracer.stop()?;
    if !status.success() {
        bail!("the tracer exited with {status} after SIGINT (expected a clean exit)");
    }
    println!("demo: done");
    println!("{}", incident::explanation(&ns.name));
    Ok(())
}

fn check_interrupt() -> Result<()> {
    if signal::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}
