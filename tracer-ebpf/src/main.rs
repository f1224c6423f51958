//! eBPF programs of `tracer`. One module per event source:
//! - `netlink_tp`: syscall tracepoints that read rtnetlink requests and the
//!   kernel's answers from the caller's memory (the path every kernel allows);
//! - `route`: fib_table_insert/fib_table_delete/fib6_add/fib6_del;
//! - `rule`: rule addition and deletion (fib_nl_newrule/fib_nl_delrule or
//!   fib_newrule/fib_delrule, chosen by userspace from what the kernel has);
//! - `nexthop`: nexthop object addition and deletion (rtm_new_nexthop,
//!   rtm_del_nexthop); with `rule`, through `handler_msg`, which copies the
//!   request message a handler received;
//! - `flush`: fib_table_flush, routes removed without a request;
//! - `exec`: sched_process_exec, for naming short-lived processes;
//! - `umount`: sys_enter_umount, the process behind a namespace that ends
//!   with its bind mount;
//! - `packet`: packets and FIB lookups on watched interfaces (loop detection).
//!
//! Kernel struct offsets come from userspace (BTF and tracefs of the running
//! kernel) through the `CONFIG` map; nothing here hard-codes a layout.
#![no_std]
#![no_main]
// Inline assembly for the fexit programs' context loads (args.rs).
#![feature(asm_experimental_arch)]

mod args;
mod emit;
mod exec;
mod flush;
mod handler_msg;
mod maps;
mod netlink_tp;
mod nexthop;
mod packet;
mod read;
mod route;
mod rule;
mod task;
mod umount;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
