//! The recorder's journal: rotated files of JSON lines in one directory.
//!
//! Files are named `tracer-<UTC time>.jsonl`, so their names sort in time
//! order; only the newest may still be written to.
pub mod read;
pub mod state;
pub mod write;

/// Where `record` writes, and `report` and `explain` read, by default.
pub const DEFAULT_DIR: &str = "/var/lib/tracer/journal";

pub const FILE_PREFIX: &str = "tracer-";
pub const FILE_SUFFIX: &str = ".jsonl";

/// Whether a file name is one of the journal's files.
pub fn is_journal_file(name: &str) -> bool {
    name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX)
}

/// A new file's name for a wall-clock time.
pub fn file_name(t: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{FILE_PREFIX}{}{FILE_SUFFIX}",
        t.format("%Y%m%dT%H%M%S%.6fZ")
    )
}
