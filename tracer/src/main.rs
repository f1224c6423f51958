//! `tracer`: attribute routing-rule and route changes to the processes behind them.

mod enrich;
mod event;
mod kernel;
mod netlink;
mod output;

fn main() {}
