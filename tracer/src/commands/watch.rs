//! `tracer watch`: every event of a session to stdout (and `--output`).
use anyhow::{Result, bail};

use crate::{
    cli::{FamilyArg, OnlyArg, WatchArgs},
    event::Family,
    journal::write::Journal,
    metrics::Metrics,
    netlink::names::TableNames,
    output::{
        fanout::Outputs,
        filter::{Filter, Only},
        pcap::PcapSink,
        sink::{Show, Sink},
    },
    session::pipeline::Pipeline,
    session::session,
};

/// Fail early, in one line, without the privileges loading eBPF needs.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    bail!(
        "tracer needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN) to load eBPF programs and enter network namespaces; run it with sudo"
    )
}

/// `tracer watch`: every event to stdout (and `--output`).
pub async fn run(args: WatchArgs) -> Result<()> {
    require_root()?;
    let out = outputs(&args, Show::All, None).await?;
    session(args, Pipeline::new(out)).await
}

/// The sink, filters, journal and metrics of a session.
pub async fn outputs(args: &WatchArgs, show: Show, journal: Option<Journal>) -> Result<Outputs> {
    let zone = crate::zone::Zone::from_utc_flag(args.utc);
    let sink = Sink::open(args.json, args.output.as_deref(), show, zone)?;
    let filter = filter(args, &TableNames::load())?;
    let mut out = Outputs::new(sink, filter);
    if let Some(addr) = args.metrics {
        let m = Metrics::new(journal.is_some());
        let bound = crate::metrics::serve::start(addr, m.registry()).await?;
        log::info!("serving metrics on http://{bound}/metrics");
        out.metrics = Some(m);
    }
    out.journal = journal;
    out.pcap = args.pcap.as_deref().map(PcapSink::create).transpose()?;
    Ok(out)
}

/// The filters the command line asks for.
fn filter(a: &WatchArgs, names: &TableNames) -> Result<Filter> {
    let tables = a
        .table
        .iter()
        .map(|t| {
            names
                .parse(t)
                .ok_or_else(|| anyhow::anyhow!("unknown --table {}", names.why_not(t)))
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(Filter {
        tables,
        comms: a.comm.clone(),
        pids: a.pid.clone(),
        family: a.family.map(|f| match f {
            FamilyArg::Inet => Family::Inet,
            FamilyArg::Inet6 => Family::Inet6,
        }),
        only: a.only.map(|o| match o {
            OnlyArg::Removals => Only::Removals,
            OnlyArg::Additions => Only::Additions,
        }),
        netns: a.netns.clone(),
    })
}
