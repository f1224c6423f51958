//! The data path runs one way (ARCHITECTURE.md): a module imports only from
//! its own layer, from layers nearer the kernel, and from the leaves. This
//! test reads the crate's sources and fails on an import that runs the
//! other way, on an import circle between top-level modules, and on a
//! top-level module missing from the table below.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Each top-level module and its layer: 0 for the leaves, then in the
/// order of the data path (ARCHITECTURE.md's picture).
const LAYERS: &[(&str, u8)] = &[
    // Leaves any layer may use.
    ("clock", 0),
    ("describe", 0),
    ("escape", 0),
    ("event", 0),
    ("iface", 0),
    ("memory", 0),
    ("nsfs", 0),
    ("prefix", 0),
    ("when", 0),
    ("zone", 0),
    // The kernel side: BTF and symbols, loading and attaching.
    ("kernel", 1),
    ("bpf", 1),
    // Decoding.
    ("netlink", 2),
    ("collect", 2),
    // Deciding what records mean.
    ("correlate", 3),
    ("detect", 3),
    ("packet", 3),
    // Outcomes into events.
    ("enrich", 4),
    // Stages between correlation and the outputs.
    ("stages", 5),
    ("guard", 5),
    // The outputs.
    ("output", 6),
    ("journal", 6),
    ("metrics", 6),
    // The command line, and the commands that read journals.
    ("cli", 7),
    ("report", 7),
    ("explain", 7),
    ("state", 7),
    // The session that drives a live pipeline, and the commands.
    ("session", 8),
    ("commands", 9),
    // The library's root (`lib.rs`, the command's entry point), the
    // binary, and the fuzz targets' bodies, which call every parser.
    ("lib", 9),
    ("main", 9),
    ("fuzzing", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every non-test source file under `dir` (tests: `*tests.rs`; their
/// shared helpers: `test_*.rs`).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") && !name.ends_with("tests.rs") && !name.starts_with("test_")
        {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The source without line comments and without its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c::{d, e}, f}`: the first word of each
            // item at depth 0.
            let mut depth = 0;
            let mut item_start = true;
            for (j, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[j..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        out.insert(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let m = module_of(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        let mut names = imports(&code(&text));
        names.remove(&m);
        deps.entry(m).or_default().extend(names);
    }
    deps
}

#[test]
fn imports_run_one_way() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let deps = graph();
    let mut wrong = Vec::new();
    for (m, names) in &deps {
        let Some(&from) = layer.get(m.as_str()) else {
            wrong.push(format!(
                "{m}: not in LAYERS (layers_tests.rs): give it a layer"
            ));
            continue;
        };
        for n in names {
            match layer.get(n.as_str()) {
                None => wrong.push(format!("{m} imports {n}, which is not in LAYERS")),
                Some(&to) if to != 0 && to > from => {
                    wrong.push(format!("{m} (layer {from}) imports {n} (layer {to})"))
                }
                _ => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data path:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_circles() {
    let deps = graph();
    // Depth-first search for a back edge, reporting the circle found.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for n in deps.get(m).into_iter().flatten() {
            if let Some(c) = visit(n, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        if let Some(c) = visit(m, &deps, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_scanner_finds_grouped_and_plain_imports() {
    let code = "use crate::{\n    a::b,\n    c::{d, e},\n    f,\n};\nlet x = crate::g::h();";
    let want: BTreeSet<String> = ["a", "c", "f", "g"].iter().map(|s| s.to_string()).collect();
    assert_eq!(imports(code), want);
    let layer: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    assert_eq!(layer.len(), LAYERS.len(), "a module listed twice");
}
