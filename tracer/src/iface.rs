//! `--iface [NETNS:]IFACE`: one interface to watch, by name, in a named
//! namespace or the tracer's own. A leaf: the CLI parses it, the packet
//! hooks attach by it, the watch list keeps it.
use std::{fmt, str::FromStr};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// One `--iface` argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfaceSpec {
    /// Namespace name under /run/netns; None for the tracer's own.
    pub netns: Option<String>,
    pub name: String,
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
        if name.is_empty()
            || name.len() > IFNAME_MAX
            || name.contains('/')
            || name.contains(char::is_whitespace)
        {
            return Err(format!(
                "`{s}`: `{name}` is not an interface name (1-{IFNAME_MAX} characters, no `/` or spaces)"
            ));
        }
        Ok(IfaceSpec {
            netns,
            name: name.to_string(),
        })
    }
}
