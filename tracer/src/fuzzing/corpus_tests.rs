//! The fuzz corpora (`tracer/fuzz/corpus/<target>/`, minimised with
//! `cargo fuzz cmin`) and the inputs that once crashed a target
//! (`tracer/fuzz/regressions/<target>/`), replayed through the targets'
//! functions on the stable toolchain: every `cargo test` runs what the
//! fuzzer found.
use std::path::{Path, PathBuf};

use super::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.expect("corpus entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    out.sort();
    out
}

fn replay(kind: &str, name: &str, f: fn(&[u8])) -> usize {
    let inputs = files(&fuzz_dir().join(kind).join(name));
    for path in &inputs {
        let data = std::fs::read(path).expect("read an input");
        let result = std::panic::catch_unwind(|| f(&data));
        assert!(
            result.is_ok(),
            "{name}: {} fails (reproduce from the workspace root: \
             rustup run nightly cargo fuzz run --fuzz-dir tracer/fuzz --codegen-units 16 {name} {})",
            path.display(),
            path.display()
        );
    }
    inputs.len()
}

#[test]
fn every_corpus_replays() {
    for (name, f) in TARGETS {
        let n = replay("corpus", name, *f);
        assert!(n > 0, "no corpus for the fuzz target {name}");
    }
}

#[test]
fn every_regression_replays() {
    let mut n = 0;
    for (name, f) in TARGETS {
        n += replay("regressions", name, *f);
    }
    assert!(n > 0, "no regression replayed");
}

/// A directory of inputs named after no target would never be replayed.
#[test]
fn every_input_directory_names_a_target() {
    for kind in ["corpus", "regressions"] {
        for entry in std::fs::read_dir(fuzz_dir().join(kind)).expect(kind) {
            let name = entry.expect("an input directory").file_name();
            assert!(
                TARGETS.iter().any(|(t, _)| name == *t),
                "tracer/fuzz/{kind}/{} is no fuzz target's",
                name.to_string_lossy()
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut on_disk: Vec<String> = files(&dir)
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "tracer/fuzz/fuzz_targets/ and fuzzing::TARGETS"
    );
    // cargo fuzz runs only the targets its manifest names as binaries.
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz manifest");
    for name in &listed {
        let bin = format!("[[bin]]\nname = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"\n");
        assert!(
            manifest.contains(&bin),
            "tracer/fuzz/Cargo.toml has no {bin}"
        );
    }
}
