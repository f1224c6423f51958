//! Attaching the packet programs for `--iface`.
//!
//! Each watched interface gets the tc programs (`pkt_rx_tc` on its
//! ingress, `pkt_tx_tc` on its egress, as tcx links, Linux 6.6+, else as
//! classic tc direct-action filters under a `clsact` qdisc), so that
//! packets on other interfaces run no program at all. Where that fails
//! (a link type whose header length is not known here,
//! a `TC_IFACES` slot another watched interface holds), the interface is
//! watched through the tracepoint programs instead: they are attached
//! once, see every packet on the machine, and filter by the
//! `WATCH_IFACES` map.
//!
//! The FIB lookup tracepoints fire for every route lookup on the machine,
//! so they are attached only while the kernel reports loop candidates
//! ([`PacketHooks::set_fib`]); a healthy router never runs them.
//!
//! `TRACER_PACKET_HOOK=btf|raw|classic` skips the tc programs and starts
//! the tracepoint programs at that rung, and `TRACER_PACKET_HOOK=clsact`
//! skips tcx for classic tc (tests and measurements use them to run the
//! fallbacks on a kernel that would not need them).
use std::fs::File;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData},
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, TracePoint,
        tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions},
        trace_point::TracePointLinkId,
    },
};
use tracer_common::{TC_SLOTS, TcIface, WatchKey};

use super::classic_tc::{ClassicTc, ensure_clsact};
use super::loader::{attach_btf_tracepoint, attach_raw_tracepoint, attach_tracepoint, program};
use crate::{iface::IfaceSpec, nsfs::in_netns};

/// The environment variable that chooses the packet programs: `tc` (the
/// default: tcx, else classic tc), `clsact` (classic tc only), or the
/// tracepoint rung to start from, `btf`, `raw` or `classic`.
pub const PACKET_HOOK_ENV: &str = "TRACER_PACKET_HOOK";

/// The packet tracepoints: (BTF program, raw program, classic program,
/// category, event), tried in that order.
const PACKET_TRACEPOINTS: [(&str, &str, &str, &str, &str); 2] = [
    (
        "pkt_rx_btf",
        "pkt_rx_raw",
        "pkt_rx",
        "net",
        "netif_receive_skb",
    ),
    ("pkt_tx_btf", "pkt_tx_raw", "pkt_tx", "net", "net_dev_queue"),
];

/// The FIB lookup tracepoints: (program, category, event).
const FIB_TRACEPOINTS: [(&str, &str, &str); 2] = [
    ("fib4_lookup", "fib", "fib_table_lookup"),
    ("fib6_lookup", "fib6", "fib6_table_lookup"),
];

/// The tc programs: (program, where).
pub(super) const TC_PROGRAMS: [(&str, TcAttachType); 2] = [
    ("pkt_rx_tc", TcAttachType::Ingress),
    ("pkt_tx_tc", TcAttachType::Egress),
];

/// The interface is not (or no longer) there under that ifindex.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Gone(String);

/// How one interface is watched.
#[derive(Debug)]
pub enum Via {
    /// tcx links of the rx and tx programs, while attached (armed: see
    /// `packet::arming`).
    Tc(Option<(SchedClassifierLinkId, SchedClassifierLinkId)>),
    /// Classic tc filters of the rx and tx programs (no tcx), while
    /// attached (armed).
    Clsact(Option<ClassicTc>),
    /// The tracepoint programs (the caller adds the interface to
    /// `WATCH_IFACES`).
    Tracepoint,
}

impl Via {
    /// The name the `ready` event gives it.
    pub fn name(&self) -> &'static str {
        match self {
            Via::Tc(..) | Via::Clsact(..) => "tc",
            Via::Tracepoint => "tracepoint",
        }
    }

    /// The hook itself, as the `ready` event's `hook` names it: `tcx`
    /// (tcx links, Linux 6.6+), `clsact` (classic tc filters under a
    /// clsact qdisc) or `tracepoint`.
    pub fn hook(&self) -> &'static str {
        match self {
            Via::Tc(..) => "tcx",
            Via::Clsact(..) => "clsact",
            Via::Tracepoint => "tracepoint",
        }
    }

    /// Its programs run now: tc programs disarmed do not.
    pub fn is_armed(&self) -> bool {
        !matches!(self, Via::Tc(None) | Via::Clsact(None))
    }

    /// Watched by tc programs of its own (tcx or classic tc)?
    pub fn is_tc(&self) -> bool {
        !matches!(self, Via::Tracepoint)
    }
}

/// The packet programs and what is attached.
pub struct PacketHooks {
    /// Owns every program and map of the session (dropping it detaches
    /// them all).
    pub(super) ebpf: Ebpf,
    /// The tc programs are loaded and wanted.
    tc: bool,
    /// Attach them as classic tc filters, without trying tcx.
    clsact_only: bool,
    /// The tracepoint rung to start from: 0 BTF, 1 raw, 2 classic.
    first_rung: usize,
    tracepoints: bool,
    /// The tc programs' interfaces, in slot ifindex % TC_SLOTS.
    tc_ifaces: Array<MapData, TcIface>,
    /// The maps the tracepoint programs filter by.
    pub ifaces: HashMap<MapData, WatchKey, u8>,
    pub ifindex_bits: Array<MapData, u64>,
    /// The FIB programs loaded (verified at start-up, attached on demand).
    fib_loaded: bool,
    /// Their links while attached.
    fib_links: Vec<(&'static str, TracePointLinkId)>,
    /// The threads releasing the tc programs of recent disarms.
    pub(super) releasing: Vec<std::thread::JoinHandle<()>>,
}

impl PacketHooks {
    /// Loads the FIB lookup programs (attached by [`Self::set_fib`]) and
    /// the tc programs, and with the tc programs refused or not wanted,
    /// attaches the packet tracepoints; warnings say what is missing.
    pub fn new(mut ebpf: Ebpf, warnings: &mut Vec<String>) -> Result<Self> {
        let hook = std::env::var(PACKET_HOOK_ENV).ok();
        let clsact_only = hook.as_deref() == Some("clsact");
        let (tc_wanted, first_rung) = match hook.as_deref() {
            None | Some("" | "tc" | "clsact") => (true, 0),
            Some("btf") => (false, 0),
            Some("raw") => (false, 1),
            Some("classic") => (false, 2),
            Some(other) => {
                return Err(anyhow!(
                    "{PACKET_HOOK_ENV}={other}: expected tc, clsact, btf, raw or classic"
                ));
            }
        };
        let fib_loaded = match FIB_TRACEPOINTS.iter().try_for_each(|(prog, ..)| {
            Ok::<_, anyhow::Error>(program::<TracePoint>(&mut ebpf, prog)?.load()?)
        }) {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!(
                    "FIB lookups will not be reported (loops are still explained from the routing state): {e:#}"
                ));
                false
            }
        };
        let mut tc = tc_wanted;
        if tc {
            for (prog, _) in TC_PROGRAMS {
                if let Err(e) =
                    program::<SchedClassifier>(&mut ebpf, prog).and_then(|p| Ok(p.load()?))
                {
                    warnings.push(format!(
                        "tc program {prog} refused ({e:#}); every watched interface goes through the packet tracepoints (slower)"
                    ));
                    tc = false;
                    break;
                }
            }
        }
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing"))
        };
        let tc_ifaces = Array::try_from(take("TC_IFACES")?)?;
        let ifaces = HashMap::try_from(take("WATCH_IFACES")?)?;
        let ifindex_bits = Array::try_from(take("WATCH_IFINDEX")?)?;
        let mut hooks = PacketHooks {
            ebpf,
            tc,
            clsact_only,
            first_rung,
            tracepoints: false,
            tc_ifaces,
            ifaces,
            ifindex_bits,
            fib_loaded,
            fib_links: Vec::new(),
            releasing: Vec::new(),
        };
        if !tc {
            // Every interface will need them: fail now, not later.
            hooks.attach_tracepoints(warnings)?;
        }
        Ok(hooks)
    }

    /// Starts watching `key` (the interface `spec` names): with the tc
    /// programs if possible, else through the tracepoints. An interface
    /// that is gone or renumbered is an error (the next sync retries).
    pub fn watch(&mut self, spec: &IfaceSpec, key: WatchKey) -> Result<Via> {
        if self.tc {
            match self.attach_tc(spec, key) {
                Ok(via) => return Ok(via),
                Err(e) if e.is::<Gone>() => return Err(e),
                Err(e) => log::warn!(
                    "{spec}: cannot attach the tc programs ({e:#}); watching it through the packet tracepoints (slower)"
                ),
            }
        }
        let mut warnings = Vec::new();
        self.attach_tracepoints(&mut warnings)?;
        for w in warnings {
            log::warn!("{w}");
        }
        Ok(Via::Tracepoint)
    }

    /// Stops watching `key`.
    pub fn unwatch(&mut self, key: &WatchKey, via: Via) {
        match via {
            Via::Tc(links) => self.release_tcx(links),
            // Its filters go (from inside the namespace) when it is dropped.
            Via::Clsact(filters) => drop(filters),
            Via::Tracepoint => return,
        }
        let _ = self
            .tc_ifaces
            .set(key.ifindex % TC_SLOTS, TcIface::default(), 0);
    }

    fn attach_tc(&mut self, spec: &IfaceSpec, key: WatchKey) -> Result<Via> {
        let slot = key.ifindex % TC_SLOTS;
        let held = self.tc_ifaces.get(&slot, 0)?;
        if held.ifindex != 0 {
            return Err(anyhow!(
                "its slot in TC_IFACES holds another watched interface (ifindex {}, netns {})",
                held.ifindex,
                held.netns
            ));
        }
        self.await_released();
        // tcx and tc attach by ifindex in the namespace of the calling
        // thread: attach from a thread that enters the interface's namespace.
        let ebpf = &mut self.ebpf;
        let clsact_only = self.clsact_only;
        let (l2_len, [rx, tx], classic) = in_namespace(
            spec,
            key,
            |ebpf| -> Result<(u32, [SchedClassifierLinkId; 2], bool)> {
                let l2_len = l2_len(&spec.name)?;
                // Filters a killed tracer left on it (classic tc outlives
                // its process) go first.
                match super::orphan_tc::remove_orphans(&spec.name, key.ifindex, &TC_PROGRAMS) {
                    Ok(gone) if !gone.is_empty() => log::warn!(
                        "{spec}: removed tc filters a killed tracer left behind: {}",
                        gone.join(", ")
                    ),
                    Ok(_) => {}
                    Err(e) => log::warn!("{spec}: looking for left-over tc filters: {e:#}"),
                }
                if clsact_only {
                    ensure_clsact(&spec.name);
                }
                let (links, classic) = attach_programs(ebpf, spec, clsact_only, true)?;
                Ok((l2_len, links, classic))
            },
            ebpf,
        )?;
        let via = if classic {
            Via::Clsact(Some(self.classic_filters(spec, [rx, tx])?))
        } else {
            Via::Tc(Some((rx, tx)))
        };
        let iface = TcIface {
            netns: key.netns,
            ifindex: key.ifindex,
            l2_len,
            _pad: 0,
        };
        if let Err(e) = self.tc_ifaces.set(slot, iface, 0) {
            self.unwatch(&key, via);
            return Err(anyhow!("TC_IFACES: {e}"));
        }
        Ok(via)
    }

    /// Attaches the packet tracepoints once: for each, the BTF-enabled
    /// program, else the raw one, else the classic one (from the first
    /// rung asked for).
    fn attach_tracepoints(&mut self, warnings: &mut Vec<String>) -> Result<()> {
        if self.tracepoints {
            return Ok(());
        }
        let ebpf = &mut self.ebpf;
        // The kernel's BTF (tens of MiB parsed) only while attaching: the
        // tc programs do not need it.
        let btf = (self.first_rung == 0).then(crate::kernel::btf::parse_for_aya);
        for (typed, raw, classic, category, name) in PACKET_TRACEPOINTS {
            if let Some(btf) = &btf {
                let attached = match btf {
                    Ok(btf) => attach_btf_tracepoint(ebpf, btf, typed, name),
                    Err(e) => Err(anyhow!("{e:#}")),
                };
                let Err(e) = attached else {
                    continue;
                };
                warnings.push(format!(
                    "BTF tracepoint {name} refused ({e:#}); using the raw tracepoint (slower)"
                ));
            }
            if self.first_rung <= 1 {
                let Err(e) = attach_raw_tracepoint(ebpf, raw, name) else {
                    continue;
                };
                warnings.push(format!(
                    "raw tracepoint {name} refused ({e:#}); using the classic tracepoint (slower)"
                ));
            }
            attach_tracepoint(ebpf, classic, category, name)
                .context("--iface needs the packet tracepoints")?;
        }
        self.tracepoints = true;
        Ok(())
    }
}

impl PacketHooks {
    /// The classic filters just attached to `spec`'s interface, owned, so
    /// that they go when dropped (unwatched, disarmed, or at the session's
    /// end), from inside its namespace.
    pub(super) fn classic_filters(
        &mut self,
        spec: &IfaceSpec,
        links: [SchedClassifierLinkId; 2],
    ) -> Result<ClassicTc> {
        let mut owned = Vec::new();
        for ((prog, _), link) in TC_PROGRAMS.into_iter().zip(links) {
            owned.push(program::<SchedClassifier>(&mut self.ebpf, prog)?.take_link(link)?);
        }
        Ok(ClassicTc::new(spec.netns_path(), owned))
    }

    /// Attaches (`on`) or detaches the FIB lookup programs. Attaching what
    /// is attached, or detaching what is not, does nothing.
    pub fn set_fib(&mut self, on: bool) -> Result<()> {
        let attached = !self.fib_links.is_empty();
        if !self.fib_loaded || on == attached {
            return Ok(());
        }
        if !on {
            for (prog, link) in self.fib_links.drain(..) {
                program::<TracePoint>(&mut self.ebpf, prog)?.detach(link)?;
            }
            return Ok(());
        }
        for (prog, category, name) in FIB_TRACEPOINTS {
            let link = program::<TracePoint>(&mut self.ebpf, prog)?
                .attach(category, name)
                .with_context(|| format!("attaching tracepoint {category}:{name}"))?;
            self.fib_links.push((prog, link));
        }
        Ok(())
    }
}

/// Runs `f` on a thread inside the namespace of `spec`, once its
/// interface is found there under `key`'s ifindex: tcx and tc attach by
/// ifindex in the namespace of the calling thread.
pub(super) fn in_namespace<T: Send>(
    spec: &IfaceSpec,
    key: WatchKey,
    f: impl FnOnce(&mut Ebpf) -> Result<T> + Send,
    ebpf: &mut Ebpf,
) -> Result<T> {
    let netns = spec
        .netns_path()
        .as_ref()
        .map(File::open)
        .transpose()
        .map_err(|e| Gone(format!("opening its network namespace: {e}")))?;
    in_netns(netns.as_ref(), || {
        let ifindex = ifindex_of(&spec.name)?;
        if ifindex != key.ifindex {
            return Err(Gone(format!(
                "{} is now ifindex {ifindex}, not {}",
                spec.name, key.ifindex
            ))
            .into());
        }
        f(ebpf)
    })
}

/// Attaches the rx and tx programs to `spec`'s interface (in the calling
/// thread's namespace): as tcx links, or with `classic` as classic tc
/// filters. With `fallback`, a program tcx refuses (Linux < 6.6) is
/// attached as a classic filter instead, and so is every one after it.
/// On an error, what was attached is detached. Returns the links and
/// whether they ended up classic.
pub(super) fn attach_programs(
    ebpf: &mut Ebpf,
    spec: &IfaceSpec,
    mut classic: bool,
    fallback: bool,
) -> Result<([SchedClassifierLinkId; 2], bool)> {
    let mut links = Vec::new();
    for (prog, at) in TC_PROGRAMS {
        let mut attached = attach(ebpf, prog, &spec.name, at, classic);
        if let Err(tcx) = &attached
            && !classic
            && fallback
        {
            log::debug!("{spec}: tcx refused ({tcx:#}); trying classic tc");
            classic = true;
            ensure_clsact(&spec.name);
            attached = attach(ebpf, prog, &spec.name, at, true);
        }
        match attached {
            Ok(link) => links.push(link),
            Err(e) => {
                for ((prog, _), link) in TC_PROGRAMS.into_iter().zip(links) {
                    let _ = program::<SchedClassifier>(ebpf, prog).map(|p| p.detach(link));
                }
                return Err(e.context(format!("attaching {prog}")));
            }
        }
    }
    let links = links
        .try_into()
        .map_err(|_| anyhow!("expected two links"))?;
    Ok((links, classic))
}

/// Attaches one tc program: as a tcx link, or with `classic` as a classic
/// tc filter (direct action, under the clsact qdisc).
fn attach(
    ebpf: &mut Ebpf,
    prog: &str,
    ifname: &str,
    at: TcAttachType,
    classic: bool,
) -> Result<SchedClassifierLinkId> {
    let p = program::<SchedClassifier>(ebpf, prog)?;
    let opts = if classic {
        TcAttachOptions::Netlink(NlOptions::default())
    } else {
        TcAttachOptions::TcxOrder(LinkOrder::default())
    };
    Ok(p.attach_with_options(ifname, at, opts)?)
}

fn ifindex_of(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => {
            let e = std::io::Error::last_os_error();
            Err(Gone(format!("no interface {name}: {e}")).into())
        }
        i => Ok(i),
    }
}

/// The link-layer header length of the packets the tc programs see on
/// interface `name` (in the calling thread's namespace), from its
/// hardware type. Other types are not known here.
fn l2_len(name: &str) -> Result<u32> {
    const ARPHRD_ETHER: u16 = 1;
    const ARPHRD_PPP: u16 = 512;
    const ARPHRD_RAWIP: u16 = 519;
    const ARPHRD_LOOPBACK: u16 = 772;
    const ARPHRD_NONE: u16 = 0xfffe;
    // SAFETY: plain socket and ioctl calls on a zeroed ifreq whose name is
    // NUL-terminated (IFNAMSIZ is larger than any name accepted).
    let hw_type = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket");
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, b) in ifr
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = b as libc::c_char;
        }
        let rc = libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut ifr);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            return Err(err).with_context(|| format!("SIOCGIFHWADDR {name}"));
        }
        ifr.ifr_ifru.ifru_hwaddr.sa_family
    };
    match hw_type {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => Ok(14),
        ARPHRD_NONE | ARPHRD_RAWIP | ARPHRD_PPP => Ok(0),
        other => Err(anyhow!("link type {other} (ARPHRD_*) is not known here")),
    }
}
