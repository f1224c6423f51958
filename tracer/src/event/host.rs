//! The host's identity on every JSON line: `host` (the hostname) and
//! `machine_id` (/etc/machine-id), so that journals and streams gathered
//! from many routers stay apart (`report --journal A --journal B`), even
//! when two routers share a hostname. They are added where a line is
//! written, after the event's own fields: the event model stays host-free.
use std::sync::OnceLock;

use super::Event;

/// This host's identity, read once.
pub struct Host {
    /// `"host":"NAME"`, as JSON.
    host_json: String,
    /// `"machine_id":"ID"`, as JSON, or empty when there is none.
    machine_json: String,
}

impl Host {
    fn read() -> Host {
        // The hostname of the tracer's UTS namespace (the host's).
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Host::new(&name, id.as_deref())
    }

    pub fn new(name: &str, machine_id: Option<&str>) -> Host {
        let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
        Host {
            host_json: format!("\"host\":{}", q(name)),
            machine_json: machine_id
                .map(|id| format!("\"machine_id\":{}", q(id)))
                .unwrap_or_default(),
        }
    }

    /// This machine's.
    pub fn this() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(Host::read)
    }

    /// `e` as one JSON line (no newline) into `out`: its fields, then
    /// `host` and `machine_id`.
    pub fn write_json(&self, e: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let start = out.len();
        serde_json::to_writer(&mut *out, e)?;
        // The object's closing brace gives way to the host's fields.
        debug_assert_eq!(out.last(), Some(&b'}'));
        out.pop();
        if out.len() > start + 1 {
            out.push(b',');
        }
        out.extend_from_slice(self.host_json.as_bytes());
        if !self.machine_json.is_empty() {
            out.push(b',');
            out.extend_from_slice(self.machine_json.as_bytes());
        }
        out.push(b'}');
        Ok(())
    }

    /// [`Host::write_json`] as a string.
    pub fn json(&self, e: &Event) -> serde_json::Result<String> {
        let mut v = Vec::with_capacity(512);
        self.write_json(e, &mut v)?;
        Ok(String::from_utf8(v).expect("serde_json writes UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Kind, Lost, Source};

    fn lost() -> Event {
        Event {
            ts: "2026-04-10T06:52:46.130211Z".into(),
            kind: Kind::Lost,
            source: Source::Tracepoint,
            body: Body::Lost(Lost {
                count: 3,
                location: "ring_buffer".into(),
            }),
        }
    }

    #[test]
    fn every_line_ends_with_the_host() {
        let h = Host::new("router-1 \"a\"", Some("8c1f"));
        let line = h.json(&lost()).unwrap();
        assert_eq!(
            line,
            r#"{"ts":"2026-04-10T06:52:46.130211Z","kind":"lost","source":"tracepoint","count":3,"location":"ring_buffer","host":"router-1 \"a\"","machine_id":"8c1f"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["host"], "router-1 \"a\"");
        assert_eq!(v["machine_id"], "8c1f");
        // A host without a machine id: the hostname alone.
        let line = Host::new("r2", None).json(&lost()).unwrap();
        assert!(
            line.ends_with(r#""location":"ring_buffer","host":"r2"}"#),
            "{line}"
        );
    }

    #[test]
    fn this_host_has_a_name() {
        let line = Host::this().json(&lost()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()), "{line}");
    }
}
