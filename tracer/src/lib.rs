//! `tracer`: attribute routing-rule and route changes to the processes behind them.
//!
//! The crate is a library with a thin binary (`main.rs`) so that the
//! fuzz targets (`tracer/fuzz/`) can call the parsers of outside bytes:
//! [`fuzzing`] is the only public module besides [`main`], the command
//! line's entry point.

mod bpf;
mod cli;
mod clock;
mod collect;
mod commands;
mod correlate;
mod describe;
mod detect;
mod enrich;
mod escape;
mod event;
mod explain;
pub mod fuzzing;
mod guard;
mod iface;
mod journal;
mod kernel;
mod memory;
mod metrics;
mod netlink;
mod nsfs;
mod output;
mod packet;
mod prefix;
mod report;
mod session;
mod stages;
mod state;
#[cfg(test)]
mod test_schema;
#[cfg(test)]
mod test_util;
mod when;
mod zone;

#[cfg(test)]
mod layers_tests;
#[cfg(test)]
mod schema_doc_tests;
#[cfg(test)]
mod schema_emitted_tests;

use clap::Parser as _;

/// Sessions run on one thread: the event path is sequential, and one core
/// is what the tracer may take from a busy router.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The `tracer` command: parses the command line, runs the command, and
/// exits with status 1 and a one-line error if it fails.
pub fn main() {
    memory::tune();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = cli::Cli::parse();
    if let Some(path) = &cli.btf
        && let Err(e) = kernel::btf::use_file(path)
    {
        eprintln!("tracer: {e}");
        std::process::exit(1);
    }
    let result = match cli.command {
        cli::Command::Watch(args) => {
            runtime().and_then(|rt| rt.block_on(commands::watch::run(args)))
        }
        cli::Command::Record(args) => {
            runtime().and_then(|rt| rt.block_on(commands::record::run(args)))
        }
        cli::Command::Guard(args) => {
            runtime().and_then(|rt| rt.block_on(commands::guard::run(args)))
        }
        cli::Command::Explain(args) => explain::run(args),
        cli::Command::Doctor(args) => commands::doctor::run(args),
        cli::Command::Report(args) => report::run(args),
        cli::Command::State(args) => state::run(args),
        cli::Command::WalkCheck(args) => commands::walk_check::run(args),
        cli::Command::GenerateDocs { dir } => commands::gendocs::run(&dir),
    };
    if let Err(e) = result {
        // One line: the error and its causes.
        eprintln!("tracer: {e:#}");
        std::process::exit(1);
    }
}
