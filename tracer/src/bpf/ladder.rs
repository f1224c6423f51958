//! The attach ladder: for each hook, the best mechanism the running kernel
//! allows (fentry/fexit, else kprobe/kretprobe, else the syscall
//! tracepoints plus rtnetlink notifications).
use std::fmt;

use serde::Serialize;

/// A place the tracer observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    RuleDel,
    RuleAdd,
    Route4Del,
    Route4Add,
    Route6Del,
    Route6Add,
    Route4Flush,
    NexthopDel,
    NexthopAdd,
}

impl Hook {
    pub const ALL: [Hook; 9] = [
        Hook::RuleDel,
        Hook::RuleAdd,
        Hook::Route4Del,
        Hook::Route4Add,
        Hook::Route6Del,
        Hook::Route6Add,
        Hook::Route4Flush,
        Hook::NexthopDel,
        Hook::NexthopAdd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::RuleDel => "rule_del",
            Hook::RuleAdd => "rule_add",
            Hook::Route4Del => "route4_del",
            Hook::Route4Add => "route4_add",
            Hook::Route6Del => "route6_del",
            Hook::Route6Add => "route6_add",
            Hook::Route4Flush => "route4_flush",
            Hook::NexthopDel => "nexthop_del",
            Hook::NexthopAdd => "nexthop_add",
        }
    }

    /// The kernel function for route hooks (rules and nexthops are chosen
    /// at run time among the functions the kernel has, each falling back
    /// on its own when it has none).
    pub fn fixed_function(self) -> Option<&'static str> {
        match self {
            Hook::Route4Del => Some("fib_table_delete"),
            Hook::Route4Add => Some("fib_table_insert"),
            Hook::Route6Del => Some("fib6_del"),
            Hook::Route6Add => Some("fib6_add"),
            Hook::Route4Flush => Some("fib_table_flush"),
            Hook::RuleDel | Hook::RuleAdd | Hook::NexthopDel | Hook::NexthopAdd => None,
        }
    }

    /// eBPF program names for (fexit, kprobe entry, kretprobe).
    pub fn programs(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Hook::RuleDel => ("fexit_rule_del", "kprobe_rule_del", "kretprobe_rule"),
            Hook::RuleAdd => ("fexit_rule_add", "kprobe_rule_add", "kretprobe_rule"),
            Hook::Route4Del => (
                "fexit_fib_table_delete",
                "kprobe_fib_table_delete",
                "kretprobe_route",
            ),
            Hook::Route4Add => (
                "fexit_fib_table_insert",
                "kprobe_fib_table_insert",
                "kretprobe_route",
            ),
            Hook::Route6Del => ("fexit_fib6_del", "kprobe_fib6_del", "kretprobe_route"),
            Hook::Route6Add => ("fexit_fib6_add", "kprobe_fib6_add", "kretprobe_route"),
            Hook::Route4Flush => (
                "fexit_fib_table_flush",
                "kprobe_fib_table_flush",
                "kretprobe_fib_table_flush",
            ),
            Hook::NexthopDel => (
                "fexit_nexthop_del",
                "kprobe_nexthop_del",
                "kretprobe_nexthop",
            ),
            Hook::NexthopAdd => (
                "fexit_nexthop_add",
                "kprobe_nexthop_add",
                "kretprobe_nexthop",
            ),
        }
    }
}

/// How a hook is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Fentry,
    Kprobe,
    Tracepoint,
}

impl Mechanism {
    /// The next rung down the ladder.
    pub fn fallback(self) -> Option<Mechanism> {
        match self {
            Mechanism::Fentry => Some(Mechanism::Kprobe),
            Mechanism::Kprobe => Some(Mechanism::Tracepoint),
            Mechanism::Tracepoint => None,
        }
    }
    pub fn source(self) -> crate::event::Source {
        match self {
            Mechanism::Fentry => crate::event::Source::Fentry,
            Mechanism::Kprobe => crate::event::Source::Kprobe,
            Mechanism::Tracepoint => crate::event::Source::Tracepoint,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.source().as_str())
    }
}

/// `--attach`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

/// What the kernel allows, with the reason where it does not.
#[derive(Clone, Debug)]
pub struct Support {
    pub fentry: Result<(), String>,
    pub kprobe: Result<(), String>,
    pub tracepoint: Result<(), String>,
}

impl Support {
    fn of(&self, m: Mechanism) -> &Result<(), String> {
        match m {
            Mechanism::Fentry => &self.fentry,
            Mechanism::Kprobe => &self.kprobe,
            Mechanism::Tracepoint => &self.tracepoint,
        }
    }
}

/// Choose the mechanism for `hook`. `function` is the kernel function the
/// hook would attach to, or why there is none on this kernel.
pub fn choose(
    mode: AttachMode,
    support: &Support,
    hook: Hook,
    function: &Result<String, String>,
) -> Result<Mechanism, String> {
    let usable = |m: Mechanism| -> Result<(), String> {
        support
            .of(m)
            .clone()
            .map_err(|why| format!("{m} is not available on this kernel: {why}"))?;
        if m != Mechanism::Tracepoint
            && let Err(why) = function
        {
            return Err(format!("{} cannot use {m}: {why}", hook.name()));
        }
        Ok(())
    };
    match mode {
        AttachMode::Auto => {
            let mut m = Mechanism::Fentry;
            loop {
                if usable(m).is_ok() {
                    return Ok(m);
                }
                m = m.fallback().ok_or_else(|| {
                    format!(
                        "no mechanism can observe {}: {}",
                        hook.name(),
                        usable(Mechanism::Tracepoint).unwrap_err()
                    )
                })?;
            }
        }
        AttachMode::Fentry => usable(Mechanism::Fentry).map(|_| Mechanism::Fentry),
        AttachMode::Kprobe => usable(Mechanism::Kprobe).map(|_| Mechanism::Kprobe),
        AttachMode::Tracepoint => usable(Mechanism::Tracepoint).map(|_| Mechanism::Tracepoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(fentry: bool, kprobe: bool) -> Support {
        let r = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_string()) };
        Support {
            fentry: r(fentry, "BPF_PROG_LOAD: EPERM"),
            kprobe: r(kprobe, "CONFIG_KPROBES is not set"),
            tracepoint: Ok(()),
        }
    }

    fn f() -> Result<String, String> {
        Ok("fib_table_delete".into())
    }

    #[test]
    fn auto_takes_the_best_rung() {
        assert_eq!(
            choose(
                AttachMode::Auto,
                &support(true, true),
                Hook::Route4Del,
                &f()
            ),
            Ok(Mechanism::Fentry)
        );
        assert_eq!(
            choose(
                AttachMode::Auto,
                &support(false, true),
                Hook::Route4Del,
                &f()
            ),
            Ok(Mechanism::Kprobe)
        );
        assert_eq!(
            choose(
                AttachMode::Auto,
                &support(false, false),
                Hook::Route4Del,
                &f()
            ),
            Ok(Mechanism::Tracepoint)
        );
    }

    #[test]
    fn missing_symbol_falls_back_to_tracepoints() {
        let missing = Err("fib_nl_delrule and fib_delrule are not in kallsyms".to_string());
        assert_eq!(
            choose(
                AttachMode::Auto,
                &support(true, true),
                Hook::RuleDel,
                &missing
            ),
            Ok(Mechanism::Tracepoint)
        );
        let err = choose(
            AttachMode::Kprobe,
            &support(true, true),
            Hook::RuleDel,
            &missing,
        )
        .unwrap_err();
        assert!(err.contains("rule_del cannot use kprobe"), "{err}");
        // A nexthop handler missing (static, so it may be absent) moves
        // only its own hook down, while the others keep fentry.
        let missing = Err("no attachable nexthop addition function".to_string());
        assert_eq!(
            choose(
                AttachMode::Auto,
                &support(true, true),
                Hook::NexthopAdd,
                &missing
            ),
            Ok(Mechanism::Tracepoint)
        );
        assert_eq!(
            choose(
                AttachMode::Auto,
                &support(true, true),
                Hook::NexthopDel,
                &Ok("rtm_del_nexthop".into())
            ),
            Ok(Mechanism::Fentry)
        );
    }

    #[test]
    fn forced_mode_fails_with_the_kernel_reason() {
        let err = choose(
            AttachMode::Fentry,
            &support(false, false),
            Hook::Route4Del,
            &f(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "fentry is not available on this kernel: BPF_PROG_LOAD: EPERM"
        );
        let err = choose(
            AttachMode::Kprobe,
            &support(false, false),
            Hook::Route4Del,
            &f(),
        )
        .unwrap_err();
        assert!(err.contains("CONFIG_KPROBES"), "{err}");
        assert_eq!(
            choose(
                AttachMode::Tracepoint,
                &support(true, true),
                Hook::Route4Del,
                &f()
            ),
            Ok(Mechanism::Tracepoint)
        );
    }
}
