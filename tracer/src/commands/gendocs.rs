//! `tracer generate-docs DIR` (hidden): the man pages (clap_mangen) and the
//! bash, zsh and fish completions (clap_complete), generated from the CLI
//! definition itself so they never drift from it. `cargo xtask dist` puts
//! them in the Debian packages.
use std::{fs, path::Path};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn run(dir: &Path) -> Result<()> {
    let man = dir.join("man1");
    let completions = dir.join("completions");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;

    let mut cli = Cli::command();
    cli.build();
    write_man(&man, "tracer", cli.clone())?;
    for sub in cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // `tracer-watch(1)` documents `tracer watch`. clap takes static
        // names; this runs once, so the few strings are leaked.
        let name: &'static str = Box::leak(format!("tracer-{}", sub.get_name()).into_boxed_str());
        let page = sub
            .clone()
            .name(name)
            .bin_name(format!("tracer {}", sub.get_name()))
            .version(env!("CARGO_PKG_VERSION"));
        write_man(&man, name, page)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli, "tracer", &completions)
            .with_context(|| format!("writing {shell} completions"))?;
    }
    Ok(())
}

fn write_man(dir: &Path, name: &str, cmd: clap::Command) -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .section("1")
        .source(format!("tracer {}", env!("CARGO_PKG_VERSION")))
        .manual("tracer manual")
        .render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}
