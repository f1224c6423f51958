//! The integration test targets and the order they run in: the set comes
//! from `cargo metadata` (every test target cargo knows, declared or
//! inferred), the order from the `[[test]]` entries of tests/Cargo.toml
//! (cargo metadata lists targets sorted by name, not as declared).

use anyhow::{Context, Result};

/// The package in tests/.
pub const PACKAGE: &str = "integration-tests";

/// Test targets of [`PACKAGE`], in run order (see [`ordered`]).
pub fn listed(meta: &cargo_metadata::Metadata) -> Result<Vec<String>> {
    let pkg = meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == PACKAGE)
        .with_context(|| {
            format!("package {PACKAGE} not found in the workspace (tests/Cargo.toml)")
        })?;
    let names: Vec<String> = pkg
        .targets
        .iter()
        .filter(|t| t.is_test())
        .map(|t| t.name.clone())
        .collect();
    let manifest = std::fs::read_to_string(&pkg.manifest_path)
        .with_context(|| format!("reading {}", pkg.manifest_path))?;
    Ok(ordered(&names, &declared_tests(&manifest)))
}

/// Targets `cargo xtask test` does not run yet, and why (printed on every
/// run, so that nobody takes the run for the whole suite).
pub const HELD_BACK: &[(&str, &str)] = &[];

/// Is this target held back (see [`HELD_BACK`])?
pub fn held_back(name: &str) -> bool {
    HELD_BACK.iter().any(|(n, _)| *n == name)
}

/// Does this target boot QEMU VMs (runs last, skipped by `--skip-qemu`)?
pub fn is_qemu(name: &str) -> bool {
    name.starts_with("qemu")
}

/// The `name`s of the `[[test]]` tables of a Cargo.toml, in file order.
pub fn declared_tests(manifest: &str) -> Vec<String> {
    let mut in_test = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_test = line.replace(' ', "") == "[[test]]";
        } else if in_test
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            names.push(value.trim().trim_matches(['"', '\'']).to_string());
        }
    }
    names
}

/// Run order: `watch` first, then the others, then the `qemu*` targets;
/// within each group in `declared` order, undeclared (inferred) ones last.
pub fn ordered(names: &[String], declared: &[String]) -> Vec<String> {
    let rank = |n: &str| match n {
        "watch" => 0,
        n if is_qemu(n) => 2,
        _ => 1,
    };
    let position = |n: &str| declared.iter().position(|d| d == n).unwrap_or(usize::MAX);
    let mut out = names.to_vec();
    out.sort_by_key(|n| (rank(n), position(n))); // stable for equal keys
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_held_back_target_is_declared() {
        let manifest = include_str!("../../../tests/Cargo.toml");
        let declared = declared_tests(manifest);
        for (name, _) in HELD_BACK {
            assert!(declared.iter().any(|d| d == name), "{name}");
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn watch_first_qemu_last_in_declared_order() {
        let declared = s(&["qemu_smoke", "watch", "qemu", "flush"]);
        assert_eq!(
            ordered(&s(&["flush", "qemu", "qemu_smoke", "watch"]), &declared),
            s(&["watch", "flush", "qemu_smoke", "qemu"])
        );
        assert_eq!(
            ordered(
                &s(&["attach", "flush", "qemu", "qemu_smoke", "watch"]),
                &declared
            ),
            s(&["watch", "flush", "attach", "qemu_smoke", "qemu"])
        );
        assert_eq!(ordered(&s(&["other"]), &[]), s(&["other"]));
        assert!(ordered(&[], &declared).is_empty());
    }

    #[test]
    fn parses_test_tables() {
        let toml = r#"
[package]
name = "integration-tests"

[lib]
name = "qemu_vm" # not a test
path = "qemu/lib.rs"

[[test]]
name = "qemu_smoke"
path = "qemu_smoke.rs"

[[bin]]
name = "nlraw"

[[ test ]]
path = "watch.rs"
name = 'watch'   # comment

[dependencies]
name = "x"
"#;
        assert_eq!(declared_tests(toml), s(&["qemu_smoke", "watch"]));
    }

    #[test]
    fn reads_this_workspace() {
        let meta = crate::workspace::metadata().unwrap();
        let names = listed(&meta).unwrap();
        assert_eq!(
            names.first().map(String::as_str),
            Some("watch"),
            "{names:?}"
        );
    }
}
