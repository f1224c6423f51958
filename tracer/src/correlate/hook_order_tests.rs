//! On the kprobe/fentry rungs a hook's record is written as the function
//! returns, after the notification went out: a notification read first
//! waits for it while its sender may still be in that syscall.
use std::time::{Duration, Instant};

use super::*;
use crate::collect::{kernel_event::KernelRoute, task::Task};
use crate::netlink::decode::{NlItem, NlObj};
use pairing_tests::throw;

const NS: u32 = 7;
const PID: u32 = 427;

/// `ip route del throw 192.168.1.0/24 table 52` on a hook rung: its
/// notification at `t`, the hook's record `late` after it.
fn deletion(alive: fn(u32) -> bool, late: Duration) -> Vec<Outcome> {
    let mut e = Engine::new(RequestScope::default());
    e.set_sender_check(alive);
    let t = Instant::now();
    let add = |op| NlItem {
        seq: 1796478734,
        portid: PID,
        flags: 0,
        obj: NlObj::Route {
            op,
            route: throw(52),
        },
    };
    e.notification(NS, add(Op::Add), t);
    let _ = e.tick(t + Duration::from_secs(2));
    e.take_outcomes();
    let t = t + Duration::from_secs(3);
    e.notification(NS, add(Op::Del), t);
    let mut step = Duration::ZERO;
    while step < late {
        step += Duration::from_millis(10);
        let _ = e.tick(t + step);
    }
    e.kernel_event(
        KernelEvent::Route(KernelRoute {
            task: Task::named(PID, NS, "ip"),
            op: Op::Del,
            route: Route {
                rtype: Some("throw".into()),
                ..throw(52)
            },
            nl_seq: 1796478734,
            ret: 0,
            requested: true,
        }),
        t + late,
    );
    let _ = e.tick(t + late + Duration::from_secs(2));
    e.take_outcomes()
}

/// The record came 111 ms after the notification (arm64 6.12 under TCG, a
/// loaded host): while the sender lives, the notification waits for it,
/// and the change is one event with its process.
#[test]
fn a_hook_record_late_after_its_notification_still_claims_it() {
    let out = deletion(|pid| pid == PID, Duration::from_millis(111));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].who.map(|w| w.pid), Some(PID));
    assert_eq!(out[0].op, Op::Del);
}

/// A sender that has exited returned from its syscall: its records were
/// all read, and the notification does not wait past KERNEL_NOTIFY_WAIT
/// (the record that then comes is reported by itself).
#[test]
fn a_notification_of_a_sender_gone_waits_no_longer() {
    let out = deletion(|_| false, Duration::from_millis(111));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].who, None, "{out:?}");
}
