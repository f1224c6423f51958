//! Fills [`tracer_common::Config`] from the running kernel's BTF and tracefs,
//! and picks which rtnetlink handler functions (rules, nexthops) to attach
//! to.

use std::fmt;

use tracer_common::{Config, KPROBE_ARG_REGS, NO_OFFSET, Resolve};

use super::{
    btf::Btf,
    kallsyms::{FilterFunctions, Kallsyms},
    tracefs::Tracefs,
};

/// Rule-deletion functions, preferred first: the rtnetlink handler, then the
/// function it calls (which newer kernels export with a `struct net *` first).
pub const RULE_DEL_FUNCTIONS: [&str; 2] = ["fib_nl_delrule", "fib_delrule"];
/// Rule-addition functions, preferred first.
pub const RULE_ADD_FUNCTIONS: [&str; 2] = ["fib_nl_newrule", "fib_newrule"];
/// The nexthop objects' rtnetlink handlers (Linux 5.3+). They are static:
/// a kernel may lack them under their exact names, and then the hooks use
/// the tracepoint rung.
pub const NEXTHOP_DEL_FUNCTIONS: [&str; 1] = ["rtm_del_nexthop"];
pub const NEXTHOP_ADD_FUNCTIONS: [&str; 1] = ["rtm_new_nexthop"];

/// Resolves every offset in [`Config`]. Whatever cannot be resolved is left at
/// [`NO_OFFSET`] and explained by one warning per field; this never fails.
///
/// `rule_del_nlh_arg`/`rule_add_nlh_arg` are the `nlh` parameter index of
/// `fib_delrule`/`fib_newrule` if BTF has them, else of
/// `fib_nl_delrule`/`fib_nl_newrule`. A caller that attaches to the functions
/// chosen by [`Handlers::choose`] must overwrite them with
/// [`Handlers::apply`], because the two families differ in argument order.
pub fn resolve(btf: &Btf, tracefs: &Tracefs) -> (Config, Vec<String>) {
    let mut r = Resolver {
        btf,
        tracefs,
        warnings: Vec::new(),
    };
    let c = Config::resolve_with(&mut r);
    (c, r.warnings)
}

/// Resolves single offsets, turning failures into warnings.
pub(super) struct Resolver<'a> {
    pub(super) btf: &'a Btf,
    pub(super) tracefs: &'a Tracefs,
    pub(super) warnings: Vec<String>,
}

impl Resolve for Resolver<'_> {
    fn member(&mut self, struct_name: &str, path: &str) -> u32 {
        self.btf
            .member_offset(struct_name, path)
            .unwrap_or_else(|e| {
                self.warnings.push(e.to_string());
                NO_OFFSET
            })
    }

    fn size(&mut self, struct_name: &str) -> u32 {
        self.btf.struct_size(struct_name).unwrap_or_else(|e| {
            self.warnings.push(e.to_string());
            NO_OFFSET
        })
    }

    /// Index of parameter `param`, which must be the same in every one of
    /// `functions`.
    fn shared_arg(&mut self, functions: &[&str], param: &str) -> u32 {
        let mut found: Option<(&str, u32)> = None;
        for &func in functions {
            let index = match self.btf.func_param_index(func, param) {
                Ok(i) => i,
                Err(e) => {
                    self.warnings.push(e.to_string());
                    return NO_OFFSET;
                }
            };
            match found {
                Some((first, i)) if i != index => {
                    self.warnings.push(format!(
                        "parameter `{param}` is argument {i} of {first} but {index} of {func}"
                    ));
                    return NO_OFFSET;
                }
                _ => found = Some((func, index)),
            }
        }
        found.map_or(NO_OFFSET, |(_, i)| i)
    }

    fn tp_field(&mut self, category: &str, event: &str, field: &str) -> u32 {
        self.tracefs
            .field_offset(category, event, field)
            .unwrap_or_else(|e| {
                self.warnings.push(e.to_string());
                NO_OFFSET
            })
    }

    /// `net.ns.inum`; if `ns` was renamed or moved, the `inum` of whichever
    /// member of `struct net` is a `struct ns_common`.
    fn net_inum(&mut self) -> u32 {
        let primary = match self.btf.member_offset("net", "ns.inum") {
            Ok(off) => return off,
            Err(e) => e,
        };
        let fallback = self
            .btf
            .member_offset_by_type("net", "ns_common")
            .and_then(|ns| Ok(ns + self.btf.member_offset("ns_common", "inum")?));
        fallback.unwrap_or_else(|e| {
            self.warnings.push(format!(
                "{primary}; fallback through the ns_common member: {e}"
            ));
            NO_OFFSET
        })
    }

    /// Offsets in `struct pt_regs` of the argument registers, one warning
    /// per register BTF does not describe.
    fn kprobe_regs(&mut self) -> [u32; KPROBE_ARG_REGS] {
        let mut regs = [NO_OFFSET; KPROBE_ARG_REGS];
        for (slot, reg) in regs.iter_mut().zip(KPROBE_ARG_REGISTERS) {
            *slot = match reg {
                ArgRegister::Member(name) => self.member("pt_regs", name),
                ArgRegister::ArrayElement(name, i) => {
                    let base = self.member("pt_regs", name);
                    if base == NO_OFFSET {
                        NO_OFFSET
                    } else {
                        base + i * size_of::<u64>() as u32
                    }
                }
            };
        }
        regs
    }

    /// Index of `nlh` in the first of `functions` that BTF describes.
    fn nlh_arg(&mut self, functions: [&str; 2]) -> u32 {
        let mut errors = Vec::new();
        for func in functions {
            match self.btf.func_param_index(func, "nlh") {
                Ok(i) => return i,
                Err(e) => errors.push(e.to_string()),
            }
        }
        self.warnings.push(errors.join("; "));
        NO_OFFSET
    }
}

/// Where a function argument lives in the kernel's `struct pt_regs`.
#[derive(Clone, Copy, Debug)]
pub enum ArgRegister {
    /// A member of its own (x86-64's `di`, `si`, ...).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Member(&'static str),
    /// Element `i` of an array of 64-bit registers (arm64's `regs[i]`).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    ArrayElement(&'static str, u32),
}

/// The registers of arguments 0..6 in this architecture's kernel calling
/// convention, by their names in the kernel's `struct pt_regs`. Only the
/// names are fixed here; their offsets come from the running kernel's BTF.
/// The eBPF object refuses to build for any other architecture.
#[cfg(target_arch = "x86_64")]
pub const KPROBE_ARG_REGISTERS: [ArgRegister; KPROBE_ARG_REGS] = [
    ArgRegister::Member("di"),
    ArgRegister::Member("si"),
    ArgRegister::Member("dx"),
    ArgRegister::Member("cx"),
    ArgRegister::Member("r8"),
    ArgRegister::Member("r9"),
];
/// arm64 (AAPCS64): arguments in x0..x5, `pt_regs.regs[0..6]`.
#[cfg(target_arch = "aarch64")]
pub const KPROBE_ARG_REGISTERS: [ArgRegister; KPROBE_ARG_REGS] = [
    ArgRegister::ArrayElement("regs", 0),
    ArgRegister::ArrayElement("regs", 1),
    ArgRegister::ArrayElement("regs", 2),
    ArgRegister::ArrayElement("regs", 3),
    ArgRegister::ArrayElement("regs", 4),
    ArgRegister::ArrayElement("regs", 5),
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "tracer supports x86_64 and aarch64 only: no kprobe argument registers for this one"
);

/// A kernel function to attach to, and where its `nlh` argument is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerFunction {
    /// Exact symbol name (present in kallsyms and BTF).
    pub name: String,
    /// 0-based index of the `struct nlmsghdr *nlh` parameter.
    pub nlh_arg: u32,
}

/// None of the candidate functions for one operation can be attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerFunctionError {
    /// `"rule deletion"`, `"nexthop addition"`, ...
    pub operation: &'static str,
    /// Each candidate and why it was rejected.
    pub rejected: Vec<(String, String)>,
}

impl fmt::Display for HandlerFunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no attachable {} function:", self.operation)?;
        for (name, why) in &self.rejected {
            write!(f, " {name}: {why};")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandlerFunctionError {}

/// One handler function chosen, or why none can be attached to.
pub type Chosen = Result<HandlerFunction, HandlerFunctionError>;

/// The deletion and addition functions chosen for one kind of object.
#[derive(Clone, Debug)]
pub struct HandlerFunctions {
    pub del: Chosen,
    pub add: Chosen,
}

impl HandlerFunctions {
    /// The chosen functions' `nlh` indexes, (deletion, addition);
    /// [`NO_OFFSET`] for an operation with no attachable function.
    fn nlh_args(&self) -> (u32, u32) {
        let arg = |r: &Chosen| r.as_ref().map_or(NO_OFFSET, |f| f.nlh_arg);
        (arg(&self.del), arg(&self.add))
    }
}

/// The rtnetlink handlers the rule and nexthop hooks attach to on this
/// kernel, each operation on its own: one that has no attachable function
/// falls back to the tracepoint rung alone.
#[derive(Clone, Debug)]
pub struct Handlers {
    pub rules: HandlerFunctions,
    pub nexthops: HandlerFunctions,
}

impl Handlers {
    /// Chooses each operation's function: for rules the netlink handlers
    /// (`fib_nl_delrule`, `fib_nl_newrule`) if attachable, else
    /// `fib_delrule`/`fib_newrule`; for nexthops `rtm_del_nexthop` and
    /// `rtm_new_nexthop`. A function is attachable if BTF gives its
    /// signature with an `nlh` parameter, `/proc/kallsyms` has it under its
    /// exact name (a `.isra`/`.constprop` copy may take different
    /// arguments), and, when `filter` could be read, ftrace lists it in
    /// `available_filter_functions`.
    pub fn choose(btf: &Btf, kallsyms: &Kallsyms, filter: Option<&FilterFunctions>) -> Handlers {
        let choose = |operation, candidates: &[&str]| {
            let mut rejected = Vec::new();
            for &name in candidates {
                match attachable(btf, kallsyms, filter, name) {
                    Ok(nlh_arg) => {
                        return Ok(HandlerFunction {
                            name: name.to_string(),
                            nlh_arg,
                        });
                    }
                    Err(why) => rejected.push((name.to_string(), why)),
                }
            }
            Err(HandlerFunctionError {
                operation,
                rejected,
            })
        };
        Handlers {
            rules: HandlerFunctions {
                del: choose("rule deletion", &RULE_DEL_FUNCTIONS),
                add: choose("rule addition", &RULE_ADD_FUNCTIONS),
            },
            nexthops: HandlerFunctions {
                del: choose("nexthop deletion", &NEXTHOP_DEL_FUNCTIONS),
                add: choose("nexthop addition", &NEXTHOP_ADD_FUNCTIONS),
            },
        }
    }

    /// Writes the chosen functions' `nlh` indexes into `config` for the
    /// kprobe programs ([`NO_OFFSET`] for an operation with no attachable
    /// function).
    pub fn apply(&self, config: &mut Config) {
        (config.rule_del_nlh_arg, config.rule_add_nlh_arg) = self.rules.nlh_args();
        (config.nexthop_del_nlh_arg, config.nexthop_add_nlh_arg) = self.nexthops.nlh_args();
    }
}

/// The `nlh` index of `name` if it can be attached to, else why not.
fn attachable(
    btf: &Btf,
    kallsyms: &Kallsyms,
    filter: Option<&FilterFunctions>,
    name: &str,
) -> Result<u32, String> {
    let nlh_arg = btf
        .func_param_index(name, "nlh")
        .map_err(|e| e.to_string())?;
    if !kallsyms.is_function(name) {
        return Err(match kallsyms.resolve_function(name) {
            Some(copy) => format!(
                "only the compiler copy {copy} is in /proc/kallsyms; its arguments may differ"
            ),
            None => "not in /proc/kallsyms (inlined?)".to_string(),
        });
    }
    if filter.is_some_and(|f| !f.contains(name)) {
        return Err("not in available_filter_functions (inlined or notrace)".to_string());
    }
    Ok(nlh_arg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::tests::vmlinux;

    /// The config as a list of its u32 words.
    fn words(c: &Config) -> Vec<u32> {
        let n = size_of::<Config>() / size_of::<u32>();
        // SAFETY: Config is #[repr(C)] and made only of u32 fields.
        unsafe { std::slice::from_raw_parts(c as *const Config as *const u32, n) }.to_vec()
    }

    fn tracefs() -> Tracefs {
        Tracefs::locate().expect("tracefs must be available (tests run as root)")
    }

    #[test]
    fn resolves_real_kernel() {
        let btf = vmlinux();
        let (c, warnings) = resolve(btf, &tracefs());
        eprintln!("{c:?}");
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        let unresolved = words(&c).iter().filter(|&&w| w == NO_OFFSET).count();
        assert_eq!(
            unresolved,
            warnings.len(),
            "one warning per unresolved field"
        );

        for (name, off) in [
            ("task_comm", c.task_comm),
            ("task_tgid", c.task_tgid),
            ("task_real_parent", c.task_real_parent),
            ("net_inum", c.net_inum),
            ("cfg_table", c.cfg_table),
            ("cfg_nlinfo", c.cfg_nlinfo),
            ("nlinfo_nlh", c.nlinfo_nlh),
            ("f6_dst_addr", c.f6_dst_addr),
            ("nhc_gw", c.nhc_gw),
            ("tp_sendmsg_msg", c.tp_sendmsg_msg),
            ("tp_exec_filename", c.tp_exec_filename),
            ("tp_umount_name", c.tp_umount_name),
        ] {
            assert_ne!(off, NO_OFFSET, "{name} unresolved");
        }

        // Distinct members of task_struct and fib_config.
        let task = [c.task_real_parent, c.task_tgid, c.task_comm, c.task_nsproxy];
        assert_all_distinct(&task);
        let cfg = [
            c.cfg_dst_len,
            c.cfg_protocol,
            c.cfg_scope,
            c.cfg_type,
            c.cfg_table,
            c.cfg_dst,
            c.cfg_gw_family,
            c.cfg_gw4,
            c.cfg_oif,
            c.cfg_priority,
            c.cfg_nlinfo,
        ];
        assert_all_distinct(&cfg);
        assert_eq!(c.cfg_gw4, c.cfg_gw6, "fc_gw4/fc_gw6 share a union");
        let cfg_size = btf.struct_size("fib_config").unwrap();
        assert!(cfg.iter().all(|&o| o < cfg_size));

        // The fib6_nh flexible array ends fib6_info, after the nexthop pointer.
        assert!(c.f6_nh > c.f6_nh_obj && c.f6_nh <= btf.struct_size("fib6_info").unwrap());
        assert_eq!(c.f6_dst_plen, c.f6_dst_addr + 16, "in6_addr then plen");
        assert_eq!(c.nlh_len, 0, "uapi nlmsghdr");
        assert_eq!(c.nlh_seq, 8, "uapi nlmsghdr");
        assert_all_distinct(&[c.nlh_len, c.nlh_type, c.nlh_seq, c.nlh_pid]);
        assert!(c.nlmsgerr_msg > c.nlmsgerr_error);
        assert!(c.mmsghdr_size > btf.struct_size("user_msghdr").unwrap());
        assert_all_distinct(&[c.fdt_fd, c.fdt_max_fds]);

        assert_eq!(
            (c.arg_f4_tb, c.arg_f4_cfg),
            (1, 2),
            "fib_table_insert(net, tb, cfg, extack)"
        );
        assert_all_distinct(&[c.arg_f6add_rt, c.arg_f6add_info]);
        assert_all_distinct(&[c.arg_flush_tb, c.arg_flush_all]);
        assert!(
            c.kprobe_regs.iter().all(|&o| o != NO_OFFSET),
            "{:?}",
            c.kprobe_regs
        );
        assert_all_distinct(&c.kprobe_regs);
        assert!(
            c.kprobe_regs
                .iter()
                .all(|&o| o < btf.struct_size("pt_regs").unwrap()),
            "argument registers inside pt_regs"
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            c.kprobe_regs[0],
            14 * 8,
            "pt_regs.di after 14 registers (asm/ptrace.h)"
        );

        assert_all_distinct(&[
            c.tp_sendto_buff,
            c.tp_sendto_len,
            c.tp_sendto_addr,
            c.tp_sendto_fd,
        ]);
        let exec = tracefs()
            .field("sched", "sched_process_exec", "filename")
            .unwrap();
        assert!(exec.is_data_loc());
        assert_eq!(c.tp_exec_filename, exec.offset);
        let umount = tracefs()
            .field("syscalls", "sys_enter_umount", "name")
            .unwrap();
        assert_eq!(c.tp_umount_name, umount.offset);
    }

    #[test]
    fn missing_tracefs_only_warns() {
        let fake = Tracefs::at("/nonexistent-tracefs");
        let (c, warnings) = resolve(vmlinux(), &fake);
        assert_eq!(c.tp_sendmsg_msg, NO_OFFSET);
        assert_ne!(c.cfg_table, NO_OFFSET);
        assert!(warnings.iter().any(|w| w.contains("sys_enter_sendmsg")));
    }

    #[test]
    fn handler_nlh_index_matches_choice() {
        let btf = vmlinux();
        let kallsyms = Kallsyms::load().unwrap();
        let filter = FilterFunctions::load(&tracefs()).ok();
        let h = Handlers::choose(btf, &kallsyms, filter.as_ref());
        eprintln!(
            "filter functions readable: {}; chosen: {h:?}",
            filter.is_some()
        );
        for chosen in [&h.rules.del, &h.rules.add, &h.nexthops.del, &h.nexthops.add] {
            let f = chosen
                .as_ref()
                .expect("a handler function must be attachable");
            assert_eq!(f.nlh_arg, btf.func_param_index(&f.name, "nlh").unwrap());
            assert!(kallsyms.contains(&f.name));
        }
        let nexthops = [&h.nexthops.del, &h.nexthops.add].map(|c| c.as_ref().unwrap());
        assert_eq!(
            nexthops.map(|f| f.name.as_str()),
            ["rtm_del_nexthop", "rtm_new_nexthop"]
        );
        // rtm_{new,del}_nexthop(skb, nlh, extack).
        assert_eq!(nexthops.map(|f| f.nlh_arg), [1, 1]);
        let mut config = Config::unresolved();
        h.apply(&mut config);
        assert_eq!(
            config.rule_del_nlh_arg,
            h.rules.del.as_ref().unwrap().nlh_arg
        );
        assert_eq!(config.nexthop_del_nlh_arg, nexthops[0].nlh_arg);
        assert_eq!(config.nexthop_add_nlh_arg, nexthops[1].nlh_arg);
    }

    #[test]
    fn handler_rejections_explain() {
        let btf = vmlinux();
        let h = Handlers::choose(btf, &Kallsyms::default(), None);
        let mut config = Config::unresolved();
        h.apply(&mut config);
        assert_eq!(config.nexthop_add_nlh_arg, NO_OFFSET);
        let err = h.rules.del.unwrap_err();
        assert_eq!(err.rejected.len(), 2);
        assert!(err.to_string().contains("kallsyms"), "{err}");
        // Each operation on its own: a missing nexthop handler says which.
        let err = h.nexthops.add.unwrap_err();
        assert_eq!(err.rejected.len(), 1);
        assert!(
            err.to_string().starts_with(
                "no attachable nexthop addition function: rtm_new_nexthop: not in /proc/kallsyms"
            ),
            "{err}"
        );
    }

    fn assert_all_distinct(offsets: &[u32]) {
        let mut sorted = offsets.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            offsets.len(),
            "offsets not distinct: {offsets:?}"
        );
    }
}
