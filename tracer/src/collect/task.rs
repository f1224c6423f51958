//! The task a kernel program saw: who made a request or a change, in which
//! namespace, and when. Decoded once from the record header of
//! `tracer-common`, so the layers above never see kernel layouts.
use tracer_common::{COMM_LEN, EventHeader, source};

use crate::event::Source;

/// A thread as an eBPF program saw it at the moment of a request or change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Task {
    /// bpf_ktime_get_boot_ns() at the event.
    pub ts_ns: u64,
    /// The mechanism that saw it.
    pub source: Source,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Inode of the task's network namespace (0 if unknown).
    pub netns: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// `comm` as the kernel keeps it: NUL-padded bytes, not yet escaped.
    pub comm: [u8; COMM_LEN],
    pub parent_comm: [u8; COMM_LEN],
}

impl From<&EventHeader> for Task {
    fn from(h: &EventHeader) -> Self {
        Task {
            ts_ns: h.ts_ns,
            source: match h.source {
                source::FENTRY => Source::Fentry,
                source::KPROBE => Source::Kprobe,
                _ => Source::Tracepoint,
            },
            pid: h.pid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            netns: h.netns,
            cgroup_id: h.cgroup_id,
            comm: h.comm,
            parent_comm: h.parent_comm,
        }
    }
}

#[cfg(test)]
impl Task {
    /// A task for tests: `comm` is copied in (at most 15 bytes).
    pub fn named(pid: u32, netns: u32, comm: &str) -> Self {
        let mut t = Task {
            pid,
            tid: pid,
            netns,
            ..Task::default()
        };
        let n = comm.len().min(COMM_LEN - 1);
        t.comm[..n].copy_from_slice(&comm.as_bytes()[..n]);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_fields_come_from_the_header() {
        let mut h = EventHeader {
            source: source::KPROBE,
            pid: 7,
            tid: 8,
            netns: 9,
            ts_ns: 10,
            ..EventHeader::default()
        };
        h.comm[..2].copy_from_slice(b"ip");
        let t = Task::from(&h);
        assert_eq!((t.pid, t.tid, t.netns, t.ts_ns), (7, 8, 9, 10));
        assert_eq!(t.source, Source::Kprobe);
        assert_eq!(&t.comm[..3], b"ip\0");
        h.source = source::FENTRY;
        assert_eq!(Task::from(&h).source, Source::Fentry);
        h.source = source::TRACEPOINT;
        assert_eq!(Task::from(&h).source, Source::Tracepoint);
    }
}
