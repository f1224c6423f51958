//! `tracer`: attribute routing-rule and route changes to the processes behind them.

mod enrich;
mod kernel;
mod output;

fn main() {}
