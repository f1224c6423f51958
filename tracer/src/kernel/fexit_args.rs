//! The fexit programs' context slots ([`FexitArgs`]) from BTF: for each
//! program, the indices of the arguments it reads in the function it is
//! attached to, and of the return value (which follows the arguments).
//! They reach the programs as a read-only global set at load time, so the
//! verifier sees them as constants (see `tracer_common::fexit`).
//!
//! What cannot be resolved stays [`NO_OFFSET`]; the same parameters are
//! resolved for the kprobe path by [`super::offsets::resolve`], which
//! already warns about each, so nothing is warned here.

use tracer_common::{FexitArgs, FexitSlots, NO_OFFSET};

use super::{
    btf::Btf,
    offsets::{Chosen, Handlers},
};

/// The slots of every fexit program on this kernel; the rule and nexthop
/// programs' are those of the handler functions chosen by
/// [`Handlers::choose`].
pub fn resolve_fexit(btf: &Btf, handlers: &Handlers) -> FexitArgs {
    FexitArgs {
        route4_del: slots(btf, "fib_table_delete", "tb", Some("cfg")),
        route4_add: slots(btf, "fib_table_insert", "tb", Some("cfg")),
        route6_del: slots(btf, "fib6_del", "rt", Some("info")),
        route6_add: slots(btf, "fib6_add", "rt", Some("info")),
        flush: slots(btf, "fib_table_flush", "tb", Some("flush_all")),
        rule_del: handler_slots(btf, &handlers.rules.del),
        rule_add: handler_slots(btf, &handlers.rules.add),
        nexthop_del: handler_slots(btf, &handlers.nexthops.del),
        nexthop_add: handler_slots(btf, &handlers.nexthops.add),
    }
}

/// Slots of `first` and `second` in `func`, and of its return value.
fn slots(btf: &Btf, func: &str, first: &str, second: Option<&str>) -> FexitSlots {
    let Ok(params) = btf.func_params(func) else {
        return FexitSlots::UNRESOLVED;
    };
    let index = |name: &str| {
        params
            .iter()
            .position(|p| p == name)
            .map_or(NO_OFFSET, |i| i as u32)
    };
    FexitSlots {
        first: index(first),
        second: second.map_or(NO_OFFSET, index),
        ret: params.len() as u32,
    }
}

fn handler_slots(btf: &Btf, chosen: &Chosen) -> FexitSlots {
    match chosen {
        Ok(f) => FexitSlots {
            // The index Handlers::choose found, with the same function's
            // argument count: both belong to the function attached to.
            first: f.nlh_arg,
            ..slots(btf, &f.name, "nlh", None)
        },
        Err(_) => FexitSlots::UNRESOLVED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{
        btf::tests::vmlinux,
        kallsyms::Kallsyms,
        offsets::{HandlerFunction, HandlerFunctionError},
    };

    #[test]
    fn slots_follow_each_functions_signature() {
        let btf = vmlinux();
        let handlers = Handlers::choose(btf, &Kallsyms::load().unwrap(), None);
        let a = resolve_fexit(btf, &handlers);
        // fib_table_insert/delete(net, tb, cfg, extack) -> int.
        for s in [a.route4_del, a.route4_add] {
            assert_eq!((s.first, s.second, s.ret), (1, 2, 4), "{a:?}");
        }
        for (func, s) in [
            ("fib6_del", a.route6_del),
            ("fib6_add", a.route6_add),
            ("fib_table_flush", a.flush),
        ] {
            let params = btf.func_params(func).unwrap();
            assert_eq!(s.ret as usize, params.len(), "{func}");
            assert!(s.first < s.ret && s.second < s.ret && s.first != s.second);
        }
        for (chosen, s) in [
            (&handlers.rules.del, a.rule_del),
            (&handlers.rules.add, a.rule_add),
            (&handlers.nexthops.del, a.nexthop_del),
            (&handlers.nexthops.add, a.nexthop_add),
        ] {
            let f = chosen.as_ref().expect("a handler function");
            assert_eq!(s.first, btf.func_param_index(&f.name, "nlh").unwrap());
            assert_eq!(s.ret as usize, btf.func_params(&f.name).unwrap().len());
            assert_eq!(s.second, NO_OFFSET);
        }
        // rtm_{new,del}_nexthop(skb, nlh, extack) -> int.
        for s in [a.nexthop_del, a.nexthop_add] {
            assert_eq!((s.first, s.ret), (1, 3), "{a:?}");
        }
    }

    #[test]
    fn each_rule_program_gets_its_own_functions_slots() {
        // fib_nl_delrule(skb, nlh, extack) and, on newer kernels,
        // fib_delrule(net, skb, nlh, extack): whichever is chosen, the
        // slots are that function's.
        let btf = vmlinux();
        for name in ["fib_nl_delrule", "fib_delrule"] {
            let Ok(nlh_arg) = btf.func_param_index(name, "nlh") else {
                continue;
            };
            let chosen = Ok(HandlerFunction {
                name: name.to_string(),
                nlh_arg,
            });
            let s = handler_slots(btf, &chosen);
            assert_eq!(s.first, nlh_arg, "{name}");
            assert_eq!(s.ret as usize, btf.func_params(name).unwrap().len());
        }
        let none = Err(HandlerFunctionError {
            operation: "rule deletion",
            rejected: Vec::new(),
        });
        assert_eq!(handler_slots(btf, &none), FexitSlots::UNRESOLVED);
        assert_eq!(
            slots(btf, "no_such_function_here", "x", None),
            FexitSlots::UNRESOLVED
        );
    }
}
