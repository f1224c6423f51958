//! `--iface [NETNS:]IFACE`: one interface to watch, by name, in a named
//! namespace or the tracer's own. A leaf: the CLI parses it, the packet
//! hooks attach by it, the watch list keeps it.
use std::{fmt, str::FromStr};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// Why a string is not an interface name: the kernel's `dev_valid_name`
/// (1-15 bytes, not `.` or `..`, no `/`, `:`, NUL or white space).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an interface name is not empty")]
    Empty,
    #[error("an interface name has at most {IFNAME_MAX} bytes, not {0}")]
    TooLong(usize),
    #[error("`.` and `..` are not interface names")]
    Dots,
    #[error("an interface name has no {0:?}")]
    Char(char),
}

/// Whether the kernel would accept `name` for an interface.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > IFNAME_MAX {
        return Err(NameError::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    match name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '\0') || c.is_whitespace())
    {
        Some(c) => Err(NameError::Char(c)),
        None => Ok(()),
    }
}

/// One `--iface` argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfaceSpec {
    /// Namespace name under /run/netns; None for the tracer's own.
    pub netns: Option<String>,
    pub name: String,
}

impl IfaceSpec {
    /// Its namespace's file under /run/netns; None for the tracer's own.
    pub fn netns_path(&self) -> Option<std::path::PathBuf> {
        self.netns
            .as_ref()
            .map(|n| std::path::Path::new(crate::nsfs::NETNS_RUN_DIR).join(n))
    }
}

impl fmt::Display for IfaceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "{ns}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for IfaceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (netns, name) = match s.split_once(':') {
            Some((ns, name)) if !ns.is_empty() => (Some(ns.to_string()), name),
            Some((_, _)) => return Err(format!("`{s}`: the namespace before `:` is empty")),
            None => (None, s),
        };
        check_name(name).map_err(|e| format!("`{s}`: `{name}` is not an interface name: {e}"))?;
        Ok(IfaceSpec {
            netns,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_their_names() {
        let spec: IfaceSpec = "router:tailscale0".parse().unwrap();
        assert_eq!(spec.netns.as_deref(), Some("router"));
        assert_eq!(spec.name, "tailscale0");
        assert_eq!(spec.to_string(), "router:tailscale0");
        assert_eq!("wg0".parse::<IfaceSpec>().unwrap().netns, None);
        assert!(":wg0".parse::<IfaceSpec>().is_err());
    }

    /// Names the kernel refuses are refused here, not waited for forever
    /// (`.` and `ns:a:b` were found by the fuzz target).
    #[test]
    fn names_the_kernel_refuses() {
        for (name, e) in [
            ("", NameError::Empty),
            ("abcdefghijklmnop", NameError::TooLong(16)),
            (".", NameError::Dots),
            ("..", NameError::Dots),
            ("a/b", NameError::Char('/')),
            ("a:b", NameError::Char(':')),
            ("a\0", NameError::Char('\0')),
            ("a b", NameError::Char(' ')),
        ] {
            assert_eq!(check_name(name), Err(e), "{name:?}");
        }
        assert_eq!(check_name("abcdefghijklmno"), Ok(()));
        assert_eq!(check_name("..a"), Ok(()));
        let e = "ns:a:b".parse::<IfaceSpec>().unwrap_err();
        assert_eq!(
            e,
            "`ns:a:b`: `a:b` is not an interface name: an interface name has no ':'"
        );
    }
}
