//! `tracer guard`: expectations from flags, a file or the present state,
//! checked in the namespaces `--netns` names (else the tracer's own);
//! `--repair` puts back what broke them; SIGHUP reads them again.
use std::{
    os::unix::fs::MetadataExt as _,
    sync::{Arc, atomic::AtomicBool},
};

use anyhow::{Context as _, Result, bail};

use super::watch;
use crate::{
    cli::GuardArgs,
    event::Netns,
    guard::{
        Guard,
        action::Runner,
        expect::Expectation,
        reload::Reload,
        repair::{Kernel, RepairConfig, Repairer},
    },
    netlink::names::TableNames,
    output::sink::Show,
    session::pipeline::Pipeline,
};

/// The expectations of the flags and the file, parsed (any error stops the
/// guard before it starts).
fn expectations(args: &GuardArgs, names: &TableNames) -> Result<Vec<(String, Expectation)>> {
    let mut texts: Vec<(String, String)> = args
        .expect
        .iter()
        .map(|t| ("--expect".to_string(), t.clone()))
        .collect();
    if let Some(f) = &args.expect_file {
        let body = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --expect-file {}", f.display()))?;
        for (n, line) in body.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                texts.push((format!("{}:{}", f.display(), n + 1), line.to_string()));
            }
        }
    }
    texts
        .into_iter()
        .map(|(at, t)| {
            Expectation::parse(&t, names)
                .map(|e| (t.clone(), e))
                .with_context(|| at)
        })
        .collect()
}

/// With `--repair`, every expectation must say where its object goes: a
/// route its `table`, a rule its `table`/`lookup` or its action.
fn check_repairable(list: &[(String, Expectation)]) -> Result<()> {
    for (text, e) in list {
        let words: Vec<&str> = text.split_whitespace().collect();
        let named = match e {
            Expectation::Route(_) => words.contains(&"table"),
            Expectation::Rule(r) => {
                r.action.is_some() || words.iter().any(|w| *w == "table" || *w == "lookup")
            }
        };
        if !named {
            bail!(
                "--repair: expectation {text:?} names no table; write `table T` \
                 (a repair puts an object back only where the expectation says it goes)"
            );
        }
    }
    Ok(())
}

/// Expectations read again on SIGHUP (checked as at start).
fn rereader(args: &GuardArgs, names: &TableNames) -> crate::guard::reload::ReadExpectations {
    let (args, names) = (args.clone(), names.clone());
    Box::new(move || {
        let list = expectations(&args, &names)?;
        if args.repair {
            check_repairable(&list)?;
        }
        Ok(list)
    })
}

/// SIGHUP sets the flag the guard looks at on its ticks (installed before
/// anything is attached, so that a SIGHUP never kills the guard).
fn on_sighup() -> Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let asked = Arc::new(AtomicBool::new(false));
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let a = asked.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            a.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    Ok(asked)
}

/// The namespaces expectations are checked in.
fn namespaces(args: &GuardArgs) -> Result<Vec<Netns>> {
    if args.watch.netns.is_empty() {
        let ino = std::fs::metadata("/proc/self/ns/net")
            .context("reading /proc/self/ns/net")?
            .ino() as u32;
        return Ok(vec![Netns {
            inode: Some(ino),
            name: None,
        }]);
    }
    args.watch
        .netns
        .iter()
        .map(|n| {
            let m = crate::enrich::netns_open::open(n)
                .and_then(|f| Ok(f.metadata()?))
                .with_context(|| format!("--netns {n}"))?;
            Ok(Netns {
                inode: Some(m.ino() as u32),
                name: Some(n.clone()),
            })
        })
        .collect()
}

pub async fn run(args: GuardArgs) -> Result<()> {
    args.watch.refuse_output_filters("guard")?;
    let names = TableNames::load();
    let list = expectations(&args, &names)?;
    if list.is_empty() && !args.expect_current {
        bail!("nothing to guard: give --expect, --expect-file or --expect-current --table T");
    }
    if args.repair {
        check_repairable(&list)?;
    }
    let spaces = namespaces(&args)?;
    watch::require_root()?;
    let runner = args
        .on_violation
        .clone()
        .map(|c| Runner::new(c, *args.on_violation_interval, *args.on_violation_timeout));
    let mut guard = Guard::new(list, &spaces, *args.grace, runner)
        .with_reload(Reload::new(on_sighup()?, rereader(&args, &names)));
    if args.repair {
        let cfg = RepairConfig {
            dry_run: args.dry_run,
            limit: args.repair_limit,
            window: *args.repair_window,
        };
        guard = guard.with_repair(Repairer::new(cfg, Box::new(Kernel)));
    }
    if args.expect_current {
        let tables = args
            .watch
            .table
            .iter()
            .map(|t| {
                names
                    .parse(t)
                    .with_context(|| format!("unknown --table {t:?}"))
            })
            .collect::<Result<Vec<u32>>>()?;
        guard.expect_current(tables, &spaces);
    }
    let out = watch::outputs(&args.watch, Show::Notable, None).await?;
    let pipeline = Pipeline::new(out).with_stage(Box::new(guard));
    crate::session::session(args.watch, pipeline).await
}
