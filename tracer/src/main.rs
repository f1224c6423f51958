//! `tracer`: attribute routing-rule and route changes to the processes
//! behind them. The command lives in the library (`lib.rs`), which the
//! fuzz targets share.

fn main() {
    tracer::main();
}
