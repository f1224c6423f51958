//! The report of the lab's recordings, and of synthetic journals.
use std::path::{Path, PathBuf};

use chrono::Duration;

use super::{build, model::Report, select::Select, text};
use crate::{
    journal::read::{self, Reader},
    when::Window,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn report_of(files: Vec<PathBuf>, window: Window, sel: &Select) -> Report {
    let (entries, problems) = Reader::new(files.clone()).read_all();
    build(entries, problems, &files, window, sel, Duration::seconds(2))
}

#[test]
fn the_incident_lab_renders_as_its_story() {
    let r = report_of(
        vec![fixture("lab-incident.jsonl")],
        Window::default(),
        &Select::default(),
    );
    let t = text::render(&r, text::Zone::Utc);
    println!("{t}");
    let _ = read::MAX_LINE;
}
