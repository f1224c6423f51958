//! Loading the eBPF object, handing it the kernel's offsets, and attaching
//! each hook with the mechanism the ladder chose (falling back a rung when
//! the kernel refuses at load or attach time, in `auto` mode).
use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
    programs::{BtfTracePoint, FExit, KProbe, Program, ProgramError, RawTracePoint, TracePoint},
};
use tracer_common::{Config, FexitArgs, PacketConfig};

use super::{
    ladder::{AttachMode, Hook, Mechanism, Support, choose},
    ring::RingReader,
};
use crate::kernel::{
    Btf, Kallsyms, KernelFeatures, Tracefs, fexit_args, kallsyms::FilterFunctions, offsets,
    packet_offsets,
};

/// The syscall tracepoints that read rtnetlink requests and acks. They are
/// attached on every path: they also see link and address requests, which
/// explain routes the kernel removes on its own.
const SYSCALL_TRACEPOINTS: [&str; 7] = [
    "sys_enter_sendmsg",
    "sys_enter_sendto",
    "sys_enter_sendmmsg",
    "sys_enter_recvmsg",
    "sys_exit_recvmsg",
    "sys_enter_recvfrom",
    "sys_exit_recvfrom",
];

/// Ring buffer size (bytes, a power of two). It is kernel memory: the
/// tracer maps only a window of it ([`RingReader`]). 8 MiB lost request
/// copies during a 1,000,000-route flush on a loaded 2-core machine; 32 MiB
/// did not.
pub const RING_BYTES: u32 = 32 << 20;

/// A loaded and attached set of programs.
pub struct Loaded {
    /// Keeps programs and links alive; dropping it detaches everything.
    /// With `--iface` it goes to the packet path's
    /// [`super::packet_hooks::PacketHooks`], which attaches more.
    pub ebpf: Ebpf,
    pub ring: RingReader,
    pub dropped: PerCpuArray<MapData, u64>,
    /// With a namespace filter: the namespaces whose netlink requests the
    /// syscall tracepoints copy (see [`sync_netns`]).
    pub nl_netns: Option<HashMap<MapData, u32, u8>>,
    /// Mechanism per hook, and the kernel function where there is one.
    pub hooks: BTreeMap<Hook, (Mechanism, Option<String>)>,
    /// Offsets that could not be resolved (fields the events will lack).
    pub warnings: Vec<String>,
}

/// Everything about the kernel the loader needs, gathered once.
pub struct KernelFacts {
    pub features: KernelFeatures,
    pub btf: Btf,
    pub tracefs: Tracefs,
    pub kallsyms: Kallsyms,
    /// tracefs `available_filter_functions`, when readable (it is not on
    /// some locked-down kernels; attachability is then tried, not known).
    pub filter: Option<FilterFunctions>,
}

impl KernelFacts {
    pub fn gather() -> Result<Self> {
        let parsed = Btf::vmlinux();
        let features = KernelFeatures::probe_with(parsed.as_ref());
        let btf = parsed.map_err(|e| {
            if crate::kernel::btf::from_btf_flag() {
                anyhow!("cannot read the BTF file given with --btf ({e})")
            } else {
                anyhow!(
                    "cannot read the kernel's BTF ({e}); the kernel needs CONFIG_DEBUG_INFO_BTF=y, or {}",
                    crate::kernel::btf::BTF_HOWTO
                )
            }
        })?;
        let tracefs = Tracefs::locate().map_err(|e| anyhow!("{e}"))?;
        // Only the functions the hooks may attach to are kept.
        let wanted = Hook::ALL
            .iter()
            .filter_map(|h| h.fixed_function())
            .chain(offsets::RULE_DEL_FUNCTIONS)
            .chain(offsets::RULE_ADD_FUNCTIONS)
            .chain(offsets::NEXTHOP_DEL_FUNCTIONS)
            .chain(offsets::NEXTHOP_ADD_FUNCTIONS);
        let kallsyms =
            Kallsyms::load_only(wanted).map_err(|e| anyhow!("cannot read /proc/kallsyms: {e}"))?;
        let filter = FilterFunctions::load(&tracefs).ok();
        Ok(KernelFacts {
            features,
            btf,
            tracefs,
            kallsyms,
            filter,
        })
    }

    pub fn support(&self) -> Support {
        let r = |f: &crate::kernel::Feature| {
            if f.available {
                Ok(())
            } else {
                Err(f.detail.clone())
            }
        };
        Support {
            fentry: r(&self.features.fentry),
            kprobe: r(&self.features.kprobes),
            tracepoint: r(&self.features.tracepoints),
        }
    }

    /// The kernel function each hook attaches to, or why there is none.
    pub fn functions(&self) -> BTreeMap<Hook, Result<String, String>> {
        let handlers = self.handlers();
        let name = |c: &offsets::Chosen| c.clone().map(|f| f.name).map_err(|e| e.to_string());
        Hook::ALL
            .iter()
            .map(|h| {
                let f = match h {
                    Hook::RuleDel => name(&handlers.rules.del),
                    Hook::RuleAdd => name(&handlers.rules.add),
                    Hook::NexthopDel => name(&handlers.nexthops.del),
                    Hook::NexthopAdd => name(&handlers.nexthops.add),
                    other => {
                        let name = other.fixed_function().expect("route hooks have a function");
                        if self.kallsyms.contains(name) && self.btf.has_func(name) {
                            Ok(name.to_string())
                        } else {
                            Err(format!(
                                "{name} is not in this kernel's kallsyms/BTF (inlined or renamed)"
                            ))
                        }
                    }
                };
                (*h, f)
            })
            .collect()
    }

    /// The rule and nexthop handlers this kernel can attach to.
    fn handlers(&self) -> offsets::Handlers {
        offsets::Handlers::choose(&self.btf, &self.kallsyms, self.filter.as_ref())
    }

    /// The plan: mechanism per hook, before trying to attach.
    pub fn plan(&self, mode: AttachMode) -> Result<BTreeMap<Hook, (Mechanism, Option<String>)>> {
        let support = self.support();
        let functions = self.functions();
        let mut plan = BTreeMap::new();
        for (hook, function) in &functions {
            let m = choose(mode, &support, *hook, function)
                .map_err(|e| anyhow!("--attach {}: {e}", mode_name(mode)))?;
            plan.insert(*hook, (m, function.clone().ok()));
        }
        Ok(plan)
    }
}

fn mode_name(mode: AttachMode) -> &'static str {
    match mode {
        AttachMode::Auto => "auto",
        AttachMode::Fentry => "fentry",
        AttachMode::Kprobe => "kprobe",
        AttachMode::Tracepoint => "tracepoint",
    }
}

/// What loading needs from the kernel facts: the attach plan and the
/// offsets. Computed before loading so that the facts (the kernel's BTF as
/// parsed by btf-rs, tens of MiB) can be dropped before aya parses it.
pub struct Prepared {
    plan: BTreeMap<Hook, (Mechanism, Option<String>)>,
    config: Config,
    fexit: FexitArgs,
    packet_config: Option<PacketConfig>,
    warnings: Vec<String>,
}

impl KernelFacts {
    /// The plan and offsets for [`load`]. With `packets`, also the packet
    /// path's offsets; `netns_filter`: requests from unwatched namespaces
    /// are dropped in the kernel.
    pub fn prepare(&self, mode: AttachMode, packets: bool, netns_filter: bool) -> Result<Prepared> {
        let plan = self.plan(mode)?;
        let (mut config, mut warnings) = offsets::resolve(&self.btf, &self.tracefs);
        config.netns_filter = netns_filter as u32;
        let handlers = self.handlers();
        handlers.apply(&mut config);
        // The fexit programs' argument slots are a read-only global: the
        // verifier must see them as constants.
        let fexit = fexit_args::resolve_fexit(&self.btf, &handlers);
        // The packet programs' offsets are a read-only global, set before the
        // object is loaded (they are constants to the verifier).
        let packet_config = packets.then(|| {
            let (c, unresolved) = packet_offsets::resolve_packet(&self.btf, &self.tracefs);
            warnings.extend(unresolved);
            c
        });
        Ok(Prepared {
            plan,
            config,
            fexit,
            packet_config,
            warnings,
        })
    }
}

/// Load the object, write the configuration and attach by the prepared
/// plan. The packet programs (when the plan has their offsets) are loaded
/// but not attached: that is [`super::packet_hooks::PacketHooks`]'s. With
/// `netns` (the namespaces to watch, when `--netns` limits them), netlink
/// requests from other namespaces are dropped in the kernel.
///
/// The kernel's BTF is parsed by aya for loading and attaching alike, and
/// freed before the ring buffer is mapped.
pub fn load(prepared: Prepared, mode: AttachMode, netns: Option<&[u32]>) -> Result<Loaded> {
    let Prepared {
        plan,
        config,
        fexit,
        packet_config,
        mut warnings,
    } = prepared;
    let mut ebpf = EbpfLoader::new();
    // `new` parsed a BTF of its own: drop it before parsing the one that
    // loading and attaching share.
    ebpf.btf(None);
    let aya_btf = crate::kernel::btf::parse_for_aya()?;
    ebpf.btf(Some(&aya_btf));
    ebpf.map_max_entries("EVENTS", RING_BYTES);
    ebpf.override_global("FEXIT_ARGS", &fexit, true);
    if let Some(c) = packet_config.as_ref() {
        ebpf.override_global("PKT_OFFSETS", c, true);
    }
    let mut ebpf = ebpf
        .load(aya::include_bytes_aligned!(concat!(
            env!("OUT_DIR"),
            "/tracer"
        )))
        .context("loading the eBPF object")?;
    write_config(&mut ebpf, config)?;
    // Filled before anything is attached, so no request of a watched
    // namespace is dropped.
    let nl_netns = match netns {
        Some(inodes) => {
            let mut map: HashMap<MapData, u32, u8> = HashMap::try_from(
                ebpf.take_map("NL_NETNS")
                    .ok_or_else(|| anyhow!("map NL_NETNS missing"))?,
            )?;
            sync_netns(&mut map, inodes)?;
            Some(map)
        }
        None => None,
    };

    let mut hooks = BTreeMap::new();
    for (hook, (mechanism, function)) in plan {
        let mut m = mechanism;
        loop {
            match attach_hook(&mut ebpf, &aya_btf, hook, m, function.as_deref()) {
                Ok(()) => break,
                Err(e) if mode == AttachMode::Auto && m.fallback().is_some() => {
                    let next = m.fallback().expect("checked");
                    warnings.push(format!(
                        "{}: {m} failed ({e:#}); falling back to {next}",
                        hook.name()
                    ));
                    m = next;
                }
                Err(e) => return Err(e.context(format!("attaching {} with {m}", hook.name()))),
            }
        }
        hooks.insert(
            hook,
            (
                m,
                (m != Mechanism::Tracepoint)
                    .then(|| function.clone())
                    .flatten(),
            ),
        );
    }

    for tp in SYSCALL_TRACEPOINTS {
        attach_tracepoint(&mut ebpf, tp, "syscalls", tp)?;
    }
    if let Err(e) = attach_tracepoint(
        &mut ebpf,
        "sched_process_exec",
        "sched",
        "sched_process_exec",
    ) {
        warnings.push(format!(
            "exec tracking unavailable, exe paths of short-lived processes may be missing: {e:#}"
        ));
    }
    if let Err(e) = attach_tracepoint(
        &mut ebpf,
        "sys_enter_umount",
        "syscalls",
        "sys_enter_umount",
    ) {
        warnings.push(format!(
            "unmount tracking unavailable, routes removed with a bind-mounted namespace will not name the process that unmounted it: {e:#}"
        ));
    }
    // Everything is attached: give the BTF's memory back before mapping
    // the ring buffer.
    drop(aya_btf);
    crate::memory::give_back();
    let ring = match ebpf.take_map("EVENTS") {
        Some(Map::RingBuf(m)) => RingReader::new(m, RING_BYTES as usize)?,
        _ => return Err(anyhow!("map EVENTS missing or not a ring buffer")),
    };
    let dropped = PerCpuArray::try_from(
        ebpf.take_map("DROPPED")
            .ok_or_else(|| anyhow!("map DROPPED missing"))?,
    )?;
    Ok(Loaded {
        ebpf,
        ring,
        dropped,
        nl_netns,
        hooks,
        warnings,
    })
}

/// Make NL_NETNS hold exactly `inodes`.
pub fn sync_netns(map: &mut HashMap<MapData, u32, u8>, inodes: &[u32]) -> Result<()> {
    let present: Vec<u32> = map.keys().filter_map(|k| k.ok()).collect();
    for gone in present.iter().filter(|i| !inodes.contains(i)) {
        map.remove(gone).context("updating NL_NETNS")?;
    }
    for i in inodes.iter().filter(|i| !present.contains(i)) {
        map.insert(i, 1, 0).context("updating NL_NETNS")?;
    }
    Ok(())
}

fn write_config(ebpf: &mut Ebpf, config: Config) -> Result<()> {
    let mut map: Array<_, Config> = Array::try_from(
        ebpf.map_mut("CONFIG")
            .ok_or_else(|| anyhow!("map CONFIG missing"))?,
    )?;
    map.set(0, config, 0)
        .context("writing the offsets into CONFIG")
}

/// The object's program `name` as a `T` (its program type).
pub(super) fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    Ok(ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing"))?
        .try_into()?)
}

pub(super) fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    prog: &str,
    name: &str,
) -> Result<()> {
    let p: &mut BtfTracePoint = program(ebpf, prog)?;
    p.load(name, btf)
        .with_context(|| format!("loading {prog}"))?;
    p.attach()
        .with_context(|| format!("attaching BTF tracepoint {name}"))?;
    Ok(())
}

pub(super) fn attach_raw_tracepoint(ebpf: &mut Ebpf, prog: &str, name: &str) -> Result<()> {
    let p: &mut RawTracePoint = program(ebpf, prog)?;
    p.load().with_context(|| format!("loading {prog}"))?;
    p.attach(name)
        .with_context(|| format!("attaching raw tracepoint {name}"))?;
    Ok(())
}

pub(super) fn attach_tracepoint(
    ebpf: &mut Ebpf,
    prog: &str,
    category: &str,
    name: &str,
) -> Result<()> {
    let p: &mut TracePoint = program(ebpf, prog)?;
    p.load().with_context(|| format!("loading {prog}"))?;
    p.attach(category, name)
        .with_context(|| format!("attaching tracepoint {category}:{name}"))?;
    Ok(())
}

fn attach_hook(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    hook: Hook,
    m: Mechanism,
    function: Option<&str>,
) -> Result<()> {
    let (fexit, kprobe, kretprobe) = hook.programs();
    match m {
        Mechanism::Tracepoint => Ok(()),
        Mechanism::Fentry => {
            let f = function.ok_or_else(|| anyhow!("no kernel function"))?;
            let p: &mut FExit = program(ebpf, fexit)?;
            p.load(f, btf)
                .with_context(|| format!("loading fexit program for {f}"))?;
            p.attach()
                .with_context(|| format!("attaching fexit to {f}"))?;
            Ok(())
        }
        Mechanism::Kprobe => {
            let f = function.ok_or_else(|| anyhow!("no kernel function"))?;
            for (prog, is_ret) in [(kprobe, false), (kretprobe, true)] {
                let p: &mut KProbe = program(ebpf, prog)?;
                // A kretprobe program serves several hooks: load it once.
                if p.fd().is_err() {
                    p.load().with_context(|| format!("loading {prog}"))?;
                }
                p.attach(f, 0).with_context(|| {
                    format!(
                        "attaching {} to {f}",
                        if is_ret { "kretprobe" } else { "kprobe" }
                    )
                })?;
            }
            Ok(())
        }
    }
}
