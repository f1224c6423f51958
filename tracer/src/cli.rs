//! Command-line interface.
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{bpf::ladder::AttachMode, iface::IfaceSpec};

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Who changed the routing? eBPF attribution of rule and route changes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// BTF of the running kernel, for a kernel without
    /// /sys/kernel/btf/vmlinux (no CONFIG_DEBUG_INFO_BTF): a file for that
    /// exact kernel from BTFHub (https://github.com/aquasecurity/btfhub-archive)
    /// or made with `pahole --btf_encode_detached FILE vmlinux`. Used for
    /// every offset and by the loader; fentry still needs the kernel's own BTF.
    #[arg(long, global = true, value_name = "FILE")]
    pub btf: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Report rule and route changes live, with the process behind each.
    Watch(WatchArgs),
    /// Record every change to a journal of rotated files, for `report` and
    /// `explain` to answer questions later (meant to run as a service).
    #[command(
        mut_arg("comm", |a| a.hide(true)),
        mut_arg("pid", |a| a.hide(true)),
        mut_arg("family", |a| a.hide(true)),
        mut_arg("only", |a| a.hide(true)),
        mut_arg("table", |a| a.hide(true))
    )]
    Record(RecordArgs),
    /// Alert when expected rules or routes go missing and stay missing.
    #[command(
        mut_arg("comm", |a| a.hide(true)),
        mut_arg("pid", |a| a.hide(true)),
        mut_arg("family", |a| a.hide(true)),
        mut_arg("only", |a| a.hide(true))
    )]
    Guard(GuardArgs),
    /// How the kernel routes DEST now, and from the journal who changed the
    /// routes and rules that decide it.
    Explain(ExplainArgs),
    /// The rules and routes as they were at a past moment, from the journal
    /// (`ip rule` / `ip route` syntax), or what changed between two moments
    /// and who changed it (no root needed).
    State(StateArgs),
    /// Show what this kernel supports and which mechanism each hook would use.
    Doctor(DoctorArgs),
    /// Read journals (or `watch --json` output) back: who removed what, in
    /// episodes, what was restored and what is still missing (no root needed).
    Report(ReportArgs),
    /// Write the man pages and shell completions into DIR (for packaging:
    /// `cargo xtask dist`).
    #[command(name = "generate-docs", hide = true)]
    GenerateDocs {
        /// Output directory (man1/, completions/).
        dir: PathBuf,
    },
    /// Compare `explain`'s offline walk with the kernel's own lookups on
    /// random rule and route sets built in namespace NETNS (for the tests).
    #[command(name = "walk-check", hide = true)]
    WalkCheck(WalkCheckArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct WalkCheckArgs {
    /// An empty network namespace (under /run/netns) to build them in.
    #[arg(long, value_name = "NAME")]
    pub netns: String,
    /// The PRNG's seed (default: from the clock; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Lookups compared, in all.
    #[arg(long, default_value_t = 5000)]
    pub cases: usize,
    /// Rule and route sets built, one after the other.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
}

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// Attach mechanism: best available (auto), or force one and fail if the kernel cannot.
    #[arg(long, value_enum, default_value = "auto")]
    pub attach: AttachMode,
    /// JSON lines on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show text lines' times in UTC instead of local time (JSON is
    /// always UTC).
    #[arg(long)]
    pub utc: bool,
    /// Also append every event as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only these routing tables (id or name from rt_tables); repeatable.
    #[arg(long, value_name = "TABLE")]
    pub table: Vec<String>,
    /// Only these network namespaces: a name the tracer gives (a bind
    /// mount's file name as in /run/netns/NAME, a container's `docker:ID`,
    /// `pid:N`), the namespace of process N (`pid:N`), or an inode;
    /// repeatable. Without it, every namespace on the host is watched.
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
    /// When the tc programs run on a watched interface: `on-demand` (the
    /// default): attached for --armed-for after start-up and after every
    /// change in the interface's namespace, while a loop lasts, and for
    /// 100 ms in every second otherwise, so that a quiet router's packets
    /// run no program of the tracer's; or `always`. The packet
    /// tracepoints (the fallback where tc cannot be used) are always
    /// attached.
    #[arg(long, value_enum, value_name = "WHEN", requires = "iface")]
    pub packet_programs: Option<PacketProgramsArg>,
    /// On demand (--packet-programs): how long the tc programs stay
    /// attached after start-up and after each change (a duration; a bare
    /// number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub armed_for: humantime::Duration,
    /// Time between loop_summary events while a loop lasts (a duration; a
    /// bare number is seconds), in whole seconds.
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = whole_secs)]
    pub loop_summary_secs: u64,
    /// Time without a looped packet after which a loop_end is reported (a
    /// duration; a bare number is seconds), in whole seconds.
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = whole_secs)]
    pub loop_end_secs: u64,
    /// Serve Prometheus metrics on ADDR (HOST:PORT or a port; without a
    /// value, 127.0.0.1:9477, loopback only).
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = crate::metrics::serve::DEFAULT_ADDR,
          value_parser = crate::metrics::serve::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RecordArgs {
    /// Directory of the journal's files (created if missing).
    #[arg(long, value_name = "DIR", default_value = crate::journal::DEFAULT_DIR)]
    pub journal: PathBuf,
    /// Start a new file once the current one reaches SIZE.
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub max_file_size: bytesize::ByteSize,
    /// Start a new file once the current one is this old.
    #[arg(long, value_name = "DURATION", default_value = "1day", value_parser = duration)]
    pub max_file_age: humantime::Duration,
    /// Remove the oldest files while all files together exceed SIZE.
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    pub max_total_size: bytesize::ByteSize,
    /// Remove files older than this.
    #[arg(long, value_name = "DURATION", default_value = "30days", value_parser = duration)]
    pub max_age: humantime::Duration,
    /// Sync written lines to disk at least this often.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub fsync_interval: humantime::Duration,
    /// Memory for events while the journal cannot be written (disk full).
    #[arg(long, value_name = "SIZE", default_value = "32MiB")]
    pub max_pending: bytesize::ByteSize,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// The destination address.
    pub dest: std::net::IpAddr,
    /// The packet's source (with --iif, a host behind that interface is
    /// assumed when not given).
    #[arg(long, value_name = "SRC")]
    pub from: Option<std::net::IpAddr>,
    /// The interface the packet arrives on (a forwarded packet); without it,
    /// a packet this host sends.
    #[arg(long, value_name = "IFACE")]
    pub iif: Option<String>,
    /// The packet's firewall mark (decimal or 0x-hex).
    #[arg(long, value_name = "MARK", value_parser = parse_mark)]
    pub mark: Option<u32>,
    /// Ask inside this network namespace (any name `watch` gives one: under
    /// /run/netns, a bind mount's file name, docker:ID, pid:N, an inode; or as
    /// the journal names it).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The recorder's journal directory, or a file of `watch --json` lines
    /// [default: /var/lib/tracer/journal].
    #[arg(long, value_name = "DIR|FILE")]
    pub journal: Option<PathBuf>,
    /// How DEST was routed at TIME, from the journal alone (no root, no
    /// kernel): its state then, walked as the kernel would. TIME as
    /// `report --since` takes it ("2026-04-10 15:52:46", "2h ago", ...).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// The output interface (a packet sent through a socket bound to it),
    /// for rules with `oif`.
    #[arg(long, value_name = "IFACE")]
    pub oif: Option<String>,
    /// The packet's TOS byte, for rules with `tos` [default: 0].
    #[arg(long, value_name = "TOS", value_parser = parse_u8)]
    pub tos: Option<u8>,
    /// The packet's IP protocol number (6 tcp, 17 udp, 1 icmp), for rules
    /// with `ipproto`.
    #[arg(long, value_name = "PROTO")]
    pub ipproto: Option<u8>,
    /// The packet's source port, for rules with `sport`.
    #[arg(long, value_name = "PORT")]
    pub sport: Option<u16>,
    /// The packet's destination port, for rules with `dport`.
    #[arg(long, value_name = "PORT")]
    pub dport: Option<u16>,
    /// The sending process's uid (a packet this host sends), for rules
    /// with `uidrange`.
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show times in UTC instead of local time (JSON is always UTC).
    #[arg(long)]
    pub utc: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StateArgs {
    /// The moment (as `report --since` takes it: "2026-04-10 15:52:46",
    /// "15:52", "2h ago", ...).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: String,
    /// Also the state at TIME2, and what changed from TIME to TIME2, with
    /// who changed each.
    #[arg(long, value_name = "TIME2", allow_hyphen_values = true)]
    pub diff: Option<String>,
    /// The namespace (as the journal names it; needed when it holds several).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Only the routes of this table (id or name), and the rules that look
    /// it up.
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// The recorder's journal directory, or a file of `watch --json` lines
    /// [default: /var/lib/tracer/journal].
    #[arg(long, value_name = "DIR|FILE")]
    pub journal: Option<PathBuf>,
    /// Show times in UTC instead of local time.
    #[arg(long)]
    pub utc: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GuardArgs {
    /// An expected route or rule, `ip route`/`ip rule` style:
    /// 'throw 192.168.1.0/24 table 52', 'rule 5270 table 52'; repeatable.
    #[arg(long, value_name = "EXPECTATION")]
    pub expect: Vec<String>,
    /// Expectations from FILE, one per line ('#' starts a comment).
    #[arg(long, value_name = "FILE")]
    pub expect_file: Option<PathBuf>,
    /// Expect what is there now: every route in the --table tables and every
    /// rule that looks one of them up.
    #[arg(long, requires = "table")]
    pub expect_current: bool,
    /// How long an expectation may stay broken before it is a violation.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub grace: humantime::Duration,
    /// Run CMD (with /bin/sh -c) on a violation, the violation's JSON on
    /// its stdin; its exit status and output are reported as guard_action.
    #[arg(long, value_name = "CMD")]
    pub on_violation: Option<String>,
    /// Run --on-violation at most once per DURATION; violations in between
    /// are counted.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub on_violation_interval: humantime::Duration,
    /// Kill --on-violation after DURATION.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub on_violation_timeout: humantime::Duration,
    /// Put back what broke an expectation once the grace period is over:
    /// the removed route or rule exactly as the kernel reported it, with a
    /// create-exclusive request (never replacing or deleting anything).
    #[arg(long)]
    pub repair: bool,
    /// Repairs of one object within --repair-window after which the guard
    /// stops repairing it (something keeps removing it).
    #[arg(long, value_name = "N", default_value_t = 3, requires = "repair",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repair_limit: u32,
    /// The window --repair-limit counts repairs in.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        requires = "repair",
        value_parser = duration
    )]
    pub repair_window: humantime::Duration,
    /// With --repair: report what would be put back, and change nothing.
    #[arg(long, requires = "repair")]
    pub dry_run: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
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
    /// FILE is given: /var/lib/tracer/journal); repeatable: the journals of
    /// many hosts are told as one timeline, each namespace named HOST:NAME.
    #[arg(long, value_name = "DIR")]
    pub journal: Vec<PathBuf>,
    /// Only the events of this host (as its events' `host` names it);
    /// repeatable.
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
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
    /// Changes by one process (or unit) less than DURATION apart form one
    /// episode (a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "2", value_parser = secs_f64)]
    pub gap: f64,
    /// Show times in UTC instead of local time.
    #[arg(long)]
    pub utc: bool,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// text; json (one object, docs/report.md); markdown (a postmortem
    /// draft to paste); html (one self-contained page with a picture of
    /// what changed on one time axis).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    Inet,
    Inet6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PacketProgramsArg {
    Always,
    OnDemand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnlyArg {
    Removals,
    Additions,
}

/// A duration, one convention for every option: a bare number is seconds
/// (`5`, `0.5`), anything else as humantime reads it (`5s`, `1m30s`,
/// `2h`, `30days`).
fn duration(s: &str) -> Result<humantime::Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("{s:?} is not a duration (seconds, 0 or more)"));
        }
        return Ok(std::time::Duration::from_secs_f64(secs).into());
    }
    s.parse::<humantime::Duration>()
        .map_err(|e| format!("{s:?} is not a duration ({e}; e.g. 5, 5s, 1m30s)"))
}

/// A [`duration`] in seconds, for options kept as a number.
fn secs_f64(s: &str) -> Result<f64, String> {
    duration(s).map(|d| std::time::Duration::from(d).as_secs_f64())
}

/// A [`duration`] rounded up to whole seconds.
fn whole_secs(s: &str) -> Result<u64, String> {
    duration(s).map(|d| std::time::Duration::from(d).as_secs_f64().ceil() as u64)
}

/// `--tos` as ip accepts it: decimal or 0x-hex.
fn parse_u8(s: &str) -> Result<u8, String> {
    let v = parse_mark(s)?;
    u8::try_from(v).map_err(|_| format!("{s:?} is more than a byte"))
}

/// `--mark` as ip accepts it: decimal or 0x-hex.
fn parse_mark(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a mark (decimal or 0x-hex)"))
}

impl WatchArgs {
    /// When the tc programs run (`--packet-programs`, `--armed-for`).
    pub fn arming(&self) -> crate::packet::arming::Arming {
        use crate::packet::arming::Arming;
        match self.packet_programs {
            Some(PacketProgramsArg::Always) => Arming::Always,
            Some(PacketProgramsArg::OnDemand) => Arming::on_demand(*self.armed_for, true),
            None => Arming::on_demand(*self.armed_for, false),
        }
    }

    /// `record` and `guard` take every change (a journal must be whole, a
    /// guard must see every removal): the output filters of `watch` would
    /// change nothing there, so they are refused (and hidden from --help).
    pub fn refuse_output_filters(&self, command: &str) -> anyhow::Result<()> {
        let given = [
            ("--comm", !self.comm.is_empty()),
            ("--pid", !self.pid.is_empty()),
            ("--family", self.family.is_some()),
            ("--only", self.only.is_some()),
            // The guard's --table chooses what --expect-current takes.
            ("--table", command == "record" && !self.table.is_empty()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            anyhow::bail!(
                "{flag} filters what `watch` shows; `{command}` takes every change (filter afterwards, with `tracer report`)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod duration_tests {
    use super::{duration, secs_f64, whole_secs};

    #[test]
    fn every_duration_takes_bare_seconds_and_humantime() {
        let secs = |s| std::time::Duration::from(duration(s).unwrap()).as_secs_f64();
        assert_eq!(secs("5"), 5.0);
        assert_eq!(secs("0.5"), 0.5);
        assert_eq!(secs("5s"), 5.0);
        assert_eq!(secs("1m30s"), 90.0);
        assert_eq!(secs("30days"), 30.0 * 86400.0);
        assert_eq!(secs_f64("2").unwrap(), 2.0);
        assert_eq!(secs_f64("250ms").unwrap(), 0.25);
        assert_eq!(whole_secs("500ms").unwrap(), 1);
        assert_eq!(whole_secs("5").unwrap(), 5);
        for bad in ["-1", "five", "NaN", "inf", ""] {
            let e = duration(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
    }
}
