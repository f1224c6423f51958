//! Command-line interface.
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{bpf::ladder::AttachMode, packet::watchlist::IfaceSpec};

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Who changed the routing? eBPF attribution of rule and route changes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report rule and route changes live, with the process behind each.
    Watch(WatchArgs),
    /// Show what this kernel supports and which mechanism each hook would use.
    Doctor(DoctorArgs),
    /// Read journals (or `watch --json` output) back: who removed what, in
    /// episodes, what was restored and what is still missing (no root needed).
    Report(ReportArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// Attach mechanism: best available (auto), or force one and fail if the kernel cannot.
    #[arg(long, value_enum, default_value = "auto")]
    pub attach: AttachMode,
    /// JSON lines on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also append every event as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only these routing tables (id or name from rt_tables); repeatable.
    #[arg(long, value_name = "TABLE")]
    pub table: Vec<String>,
    /// Only these network namespaces (names under /run/netns); repeatable.
    #[arg(long, value_name = "NAME")]
    pub netns: Vec<String>,
    /// Only changes by processes with this command name; repeatable.
    #[arg(long, value_name = "COMM")]
    pub comm: Vec<String>,
    /// Only changes by this process id; repeatable.
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Only this address family.
    #[arg(long, value_enum)]
    pub family: Option<FamilyArg>,
    /// Only removals or only additions.
    #[arg(long, value_enum)]
    pub only: Option<OnlyArg>,
    /// Watch packets on this interface for forwarding loops: IFACE in the
    /// tracer's namespace, or NETNS:IFACE in a namespace named under
    /// /run/netns; repeatable. An interface that appears later is picked up.
    #[arg(long, value_name = "[NETNS:]IFACE")]
    pub iface: Vec<IfaceSpec>,
    /// Write the packets of detected loops (originals and looped copies) to
    /// FILE as pcap (needs --iface).
    #[arg(long, value_name = "FILE", requires = "iface")]
    pub pcap: Option<PathBuf>,
    /// Seconds between loop_summary events while a loop lasts.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub loop_summary_secs: u64,
    /// Seconds without a looped packet after which a loop_end is reported.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub loop_end_secs: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Journal directory written by `tracer record` (the default when no
    /// FILE is given: /var/lib/tracer/journal).
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Files of JSON lines (`tracer watch --json` output, journal files; a
    /// directory is read as a journal; `-` is standard input), in time order.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Only events at or after this time, as journalctl takes it
    /// ("2026-04-10 15:52:46", "15:52", "yesterday", "-1h", "2h ago").
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only events at or before this time (same forms as --since).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only rules and routes of these tables (id or name); repeatable.
    #[arg(long, value_name = "TABLE")]
    pub table: Vec<String>,
    /// Only routes whose destination overlaps PREFIX (inside it or
    /// covering it), rules matching it, and loops to addresses in it.
    #[arg(long, value_name = "PREFIX")]
    pub dst: Option<String>,
    /// Only episodes of processes with this command name; repeatable.
    #[arg(long, value_name = "COMM")]
    pub comm: Vec<String>,
    /// Only episodes of this systemd unit ("foo" means "foo.service"); repeatable.
    #[arg(long, value_name = "UNIT")]
    pub unit: Vec<String>,
    /// Changes by one process (or unit) less than SECS apart form one episode.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub gap: f64,
    /// Show times in UTC instead of local time.
    #[arg(long)]
    pub utc: bool,
    /// One JSON object instead of text (docs/report.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    Inet,
    Inet6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnlyArg {
    Removals,
    Additions,
}
