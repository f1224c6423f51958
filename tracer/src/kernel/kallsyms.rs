//! Kernel symbols (`/proc/kallsyms`) and the functions ftrace can hook
//! (tracefs `available_filter_functions`), to decide whether a kernel function
//! can be kprobed / fentry-attached.

use std::{
    collections::{BTreeMap, HashSet},
    fs, io,
    path::PathBuf,
};

use super::tracefs::{Tracefs, TracefsError};

pub const KALLSYMS: &str = "/proc/kallsyms";

/// Compiler suffixes of local function copies (`fib_foo.isra.0`,
/// `fib_foo.constprop.0`, `fib_foo.part.0`, `fib_foo.llvm.123`). `.cold`
/// fragments are not entry points and are never returned.
const LOCAL_COPY_SUFFIXES: [&str; 4] = ["isra", "constprop", "part", "llvm"];

#[derive(Debug, thiserror::Error)]
pub enum KallsymsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Symbol names from `/proc/kallsyms`, with their type letter (`t`, `T`, `d`…).
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    symbols: BTreeMap<String, char>,
}

impl Kallsyms {
    /// Reads all of `/proc/kallsyms`.
    #[cfg(test)]
    pub fn load() -> Result<Self, KallsymsError> {
        Self::load_filtered(|_| true)
    }

    /// Reads `/proc/kallsyms`, keeping only the symbols named in `names` and
    /// their compiler copies (`name.isra.0`, ...): a few entries instead of
    /// a hundred thousand, read line by line.
    pub fn load_only<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, KallsymsError> {
        let names: Vec<&str> = names.into_iter().collect();
        Self::load_filtered(|sym| {
            names.iter().any(|n| {
                sym.strip_prefix(n)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
        })
    }

    fn load_filtered(keep: impl Fn(&str) -> bool) -> Result<Self, KallsymsError> {
        let err = |source| KallsymsError::Read {
            path: KALLSYMS.into(),
            source,
        };
        let mut reader = io::BufReader::new(fs::File::open(KALLSYMS).map_err(err)?);
        let mut symbols = BTreeMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            if io::BufRead::read_line(&mut reader, &mut line).map_err(err)? == 0 {
                break;
            }
            if let Some((kind, name)) = parse_line(&line)
                && keep(name)
            {
                symbols.entry(name.to_string()).or_insert(kind);
            }
        }
        Ok(Kallsyms { symbols })
    }

    /// Whether a symbol called exactly `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.symbols.contains_key(name)
    }

    /// Whether `name` exists and is a text (code) symbol.
    pub fn is_function(&self, name: &str) -> bool {
        self.symbols
            .get(name)
            .is_some_and(|t| matches!(t.to_ascii_lowercase(), 't' | 'w'))
    }

    /// The exact symbol implementing `name`: `name` itself if it exists, else
    /// a compiler-made local copy such as `name.isra.0` or `name.constprop.0`.
    /// Beware that such copies may have a changed argument list.
    pub fn resolve_function(&self, name: &str) -> Option<&str> {
        if let Some((exact, _)) = self.symbols.get_key_value(name) {
            return Some(exact);
        }
        // Every `name.<suffix>` sorts between `name.` and `name/` ('/' follows '.').
        let (lo, hi) = (format!("{name}."), format!("{name}/"));
        self.symbols
            .range(lo..hi)
            .map(|(sym, _)| sym.as_str())
            .find(|sym| {
                let first = sym[name.len() + 1..].split('.').next().unwrap_or("");
                LOCAL_COPY_SUFFIXES.contains(&first)
            })
    }
}

/// Parses `/proc/kallsyms` text: `<address> <type> <name>[\t[module]]` per
/// line. Malformed lines are skipped.
#[cfg(test)]
pub fn parse_kallsyms(text: &str) -> Kallsyms {
    let mut symbols = BTreeMap::new();
    for (kind, name) in text.lines().filter_map(parse_line) {
        symbols.entry(name.to_string()).or_insert(kind);
    }
    Kallsyms { symbols }
}

/// One `/proc/kallsyms` line: (type letter, name).
fn parse_line(line: &str) -> Option<(char, &str)> {
    let mut parts = line.split_whitespace();
    let (Some(_addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    Some((kind.chars().next()?, name))
}

/// Functions listed in tracefs `available_filter_functions`: the ones ftrace
/// can hook, so kprobes-on-ftrace and fentry can attach to them (inlined and
/// `notrace` functions are absent).
#[derive(Clone, Debug, Default)]
pub struct FilterFunctions {
    names: HashSet<String>,
}

impl FilterFunctions {
    /// Reads `available_filter_functions`. This file can be unreadable even
    /// for root (e.g. restricted by a security module), so callers should
    /// treat an error as "unknown" rather than "not attachable".
    pub fn load(tracefs: &Tracefs) -> Result<Self, TracefsError> {
        tracefs
            .read_file("available_filter_functions")
            .map(|text| parse_filter_functions(&text))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// Parses `available_filter_functions`: `<name>` or `<name> [module]` per line.
pub fn parse_filter_functions(text: &str) -> FilterFunctions {
    let names = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    FilterFunctions { names }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff81eb7b60 T __pfx_fib_newrule
ffffffff81eb7b70 T fib_newrule
ffffffff81eb8280 t fib_nl_newrule
ffffffff81eb89f0 t fib_nl_delrule
ffffffff81eb9000 t rt6_do_thing.isra.0
ffffffff81eb9100 t only_cold.cold
ffffffff81eb9200 t fib_x.constprop.0
ffffffff81eb9300 t fib_x_other
ffffffff82a00000 d fib_rules_net_ops
ffffffffc0000000 t nf_foo\t[nf_tables]
garbage
";

    #[test]
    fn parses_and_matches_exactly() {
        let k = parse_kallsyms(SAMPLE);
        assert_eq!(k.symbols.len(), 11);
        assert!(k.contains("fib_nl_delrule"));
        assert!(k.contains("nf_foo"), "module symbols are kept");
        assert!(!k.contains("fib_nl_del"), "no prefix matching");
        assert!(!k.contains("rt6_do_thing"));
        assert!(k.is_function("fib_newrule") && k.is_function("fib_nl_newrule"));
        assert!(!k.is_function("fib_rules_net_ops"));
    }

    #[test]
    fn resolves_local_copies() {
        let k = parse_kallsyms(SAMPLE);
        assert_eq!(k.resolve_function("fib_newrule"), Some("fib_newrule"));
        assert_eq!(
            k.resolve_function("rt6_do_thing"),
            Some("rt6_do_thing.isra.0")
        );
        assert_eq!(k.resolve_function("fib_x"), Some("fib_x.constprop.0"));
        assert_eq!(
            k.resolve_function("only_cold"),
            None,
            ".cold is not an entry"
        );
        assert_eq!(k.resolve_function("fib"), None);
    }

    #[test]
    fn parses_filter_functions() {
        let f = parse_filter_functions("fib_table_delete\nfib_nl_delrule\nnf_foo [nf_tables]\n");
        assert_eq!(f.names.len(), 3);
        assert!(f.contains("fib_nl_delrule") && f.contains("nf_foo"));
        assert!(!f.contains("fib_delrule"));
    }

    #[test]
    fn real_kallsyms() {
        let k = Kallsyms::load().expect("/proc/kallsyms must be readable");
        assert!(k.symbols.len() > 1000);
        assert!(k.is_function("fib_table_delete"));
    }

    #[test]
    fn real_kallsyms_only_the_wanted() {
        let k = Kallsyms::load_only(["fib_table_delete", "fib_table"])
            .expect("/proc/kallsyms must be readable");
        assert!(k.is_function("fib_table_delete"));
        assert!(!k.contains("fib_table_insert"), "no prefix matching");
        assert!(k.symbols.len() < 10);
    }
}
