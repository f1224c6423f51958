//! `tracer record`: a `watch` session whose events go to the journal, with a
//! snapshot of the state it starts from. stdout shows only what needs
//! attention (ready, lost, loops, journal health); `report` and `explain`
//! read the journal.
use anyhow::Result;

use crate::{
    cli::RecordArgs,
    journal::write::{Config, Journal},
    output::sink::Show,
};

use super::watch;

pub async fn run(args: RecordArgs) -> Result<()> {
    args.watch.refuse_output_filters("record")?;
    watch::require_root()?;
    let journal = Journal::open(Config {
        dir: args.journal.clone(),
        max_file_bytes: args.max_file_size.as_u64(),
        max_file_age: *args.max_file_age,
        max_total_bytes: args.max_total_size.as_u64(),
        max_age: *args.max_age,
        fsync_every: *args.fsync_interval,
        max_pending_bytes: args.max_pending.as_u64() as usize,
    })?;
    if let Some(p) = journal.active_path() {
        log::info!("recording to {}", p.display());
    }
    let out = watch::outputs(&args.watch, Show::Notable, Some(journal)).await?;
    crate::session::session(args.watch, crate::session::pipeline::Pipeline::new(out)).await
}
