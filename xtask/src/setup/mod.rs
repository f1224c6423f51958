//! `cargo xtask setup`: install, idempotently, what a fresh machine of the
//! project's kind lacks (cargo-fuzz included, for the fuzz targets). One
//! line per check says what was found and what is done about it. Never
//! interactive; works as root without sudo; when not root and an apt
//! package is missing, says which command to run as root.

mod apt;
mod fuzz;
mod linker;
mod toolchain;

use anyhow::Result;

/// Prints one progress line of the setup.
macro_rules! say {
    ($($arg:tt)*) => { println!("setup: {}", format!($($arg)*)) };
}
pub(crate) use say;

pub fn run() -> Result<()> {
    say!(
        "checking what this machine lacks (apt packages, nightly + rust-src, bpf-linker, cargo-fuzz)"
    );
    apt::ensure()?;
    toolchain::ensure()?;
    linker::ensure()?;
    fuzz::ensure()?;
    say!("done, everything is present");
    Ok(())
}
