//! The words of a change's `note`: what the correlator knows beyond the
//! change's fields, for a reader.
use crate::{
    correlate::{Ended, Note},
    event::Op,
};

/// The `note` of a change `op` the correlator annotated with `note`.
pub fn text(note: Note, op: Op) -> String {
    let what = if op == Op::Add { "added" } else { "removed" };
    match note {
        Note::KernelAfter(cause) => format!(
            "{what} by the kernel after {} by this process (no request named it)",
            cause.as_str()
        ),
        Note::Unexplained => {
            let action = if op == Op::Add {
                "link up or address added"
            } else {
                "link down, link removed or address removed"
            };
            format!(
                "{what} by the kernel with no request; no {action} by a process the tracer sees came just before it"
            )
        }
        Note::UnseenRequest { seq, portid } => format!(
            "no request seen for this change (netlink sequence {seq}, sender's port id {portid}, usually its pid): it came from a namespace or process the tracer does not watch, or its copy was lost"
        ),
        Note::NoOutcome { watched: true } => "no acknowledgement and no notification seen: the request changed nothing or its outcome was lost".into(),
        Note::NoOutcome { watched: false } => "outcome unknown: the namespace was not watched when this was requested (it had just appeared, or is not selected) and no acknowledgement was seen".into(),
        Note::UnwatchedAcked => "the namespace was not watched yet when this was requested (it had just appeared, or is not selected): the change as requested; what the request left out (device name, protocol, scope) was not read from the kernel".into(),
        Note::Flushed => {
            "removed by the kernel without a notification; found by re-reading the table".into()
        }
        Note::FlushedUnexplained => "removed by the kernel without a notification (found by re-reading the table); no link or address change by a process the tracer sees explains it".into(),
        Note::NamespaceGone(ended) => namespace_gone(ended),
        Note::WithNexthop { id, deleted: true } => {
            format!("{what} by the kernel with nexthop {id}, which this process deleted")
        }
        Note::WithNexthop { id, deleted: false } => format!(
            "changed by the kernel: nexthop {id}, which this process replaced, forwards elsewhere now"
        ),
        Note::Recovered => "notification dropped by the kernel (socket overflow); change found by re-reading the table".into(),
    }
}

/// The note of a route removed with its namespace: who ended it, and how
/// the tracer knows, or why no process is named.
fn namespace_gone(ended: Ended) -> String {
    const GONE: &str = "removed with its network namespace, which went away";
    match ended {
        Ended::Unmounted { held_too: false } => {
            format!("{GONE} when this process unmounted its bind mount")
        }
        Ended::Unmounted { held_too: true } => format!(
            "{GONE} after this process unmounted its bind mount; processes held it too at the last scan and have exited since, so one of them may have been the last"
        ),
        Ended::LastHolder { of: 1 } => format!(
            "{GONE} when this process exited: it was the only one holding it at the last scan, and no bind mount held it"
        ),
        Ended::LastHolder { of } => format!(
            "{GONE} when its processes exited: this one was the newest of the {of} holding it at the last scan (no bind mount held it); which of them exited last is not known"
        ),
        Ended::NotSeen => {
            format!(
                "{GONE}; no process: no scan saw what held it (it came and went between two scans)"
            )
        }
        Ended::MountGone => format!(
            "{GONE}; no process: its bind mount was removed and no unmount the tracer saw named it (unmount tracking unavailable, a relative path, or a lost record)"
        ),
        Ended::HolderUnread => format!(
            "{GONE}; no process: the processes holding it at the last scan exited before they could be read"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Cause;

    #[test]
    fn notes_name_what_happened() {
        assert_eq!(
            text(Note::KernelAfter(Cause::LinkDown), Op::Del),
            "removed by the kernel after link_down by this process (no request named it)"
        );
        let t = text(
            Note::UnseenRequest {
                seq: 9,
                portid: 4242,
            },
            Op::Add,
        );
        assert!(
            t.contains("sequence 9") && t.contains("port id 4242"),
            "{t}"
        );
        assert!(text(Note::Unexplained, Op::Add).starts_with("added by the kernel"));
        assert!(text(Note::Recovered, Op::Del).contains("socket overflow"));
    }

    #[test]
    fn namespace_notes_say_who_ended_it_or_why_none() {
        let t = |e| text(Note::NamespaceGone(e), Op::Del);
        assert!(t(Ended::Unmounted { held_too: false }).contains("this process unmounted"));
        assert!(t(Ended::Unmounted { held_too: true }).contains("may have been the last"));
        assert!(t(Ended::LastHolder { of: 1 }).contains("the only one"));
        assert!(t(Ended::LastHolder { of: 3 }).contains("the newest of the 3"));
        for e in [Ended::NotSeen, Ended::MountGone, Ended::HolderUnread] {
            assert!(t(e).contains("; no process: "), "{}", t(e));
        }
        assert!(t(Ended::NotSeen).starts_with("removed with its network namespace"));
    }
}
