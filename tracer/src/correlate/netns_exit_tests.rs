//! Who ended a gone namespace: its unmounter, else its last holder, else
//! no one and why.
use std::time::{Duration, Instant};

use super::*;
use crate::{
    correlate::RequestScope,
    event::{Family, Route},
    netlink::decode::{NlItem, NlObj},
};

fn found(mounts: &[&str], pids: &[u32], newest: Option<Task>) -> Found {
    Found {
        mounts: mounts.iter().map(PathBuf::from).collect(),
        pids: pids.to_vec(),
        newest,
    }
}

fn path(p: &str) -> Vec<u8> {
    p.as_bytes().to_vec()
}

#[test]
fn paths_match_exactly_or_with_a_trailing_slash() {
    let m = std::path::Path::new("/run/netns/red");
    assert!(same_path(b"/run/netns/red", m));
    assert!(same_path(b"/run/netns/red/", m));
    assert!(!same_path(b"/run/netns/red//", m));
    assert!(!same_path(b"/run/netns/re", m));
    assert!(!same_path(b"/run/netns/redder", m));
    assert!(
        !same_path(b"run/netns/red", m),
        "relative paths are not resolved"
    );
    assert!(!same_path(b"red", m));
    assert!(!same_path(b"/", m));
    assert!(same_path(b"/", std::path::Path::new("/")));
}

#[test]
fn the_unmounter_of_a_mount_the_last_scan_saw_ended_it() {
    let t0 = Instant::now();
    let mut u = Unmounts::default();
    u.note(Task::named(50, 1, "umount"), path("/tmp/other"), t0);
    u.note(Task::named(51, 1, "ip"), path("/run/netns/red"), t0);
    u.note(Task::named(52, 1, "ip"), path("/run/netns/blue/"), t0);
    let last = found(&["/run/netns/red"], &[], None);
    let (who, why) = who_ended(Some(&last), &mut u, t0 + Duration::from_secs(1));
    assert_eq!(who.map(|t| t.pid), Some(51));
    assert_eq!(why, Ended::Unmounted { held_too: false });
    // Taken: it ended one namespace.
    let (who, why) = who_ended(Some(&last), &mut u, t0 + Duration::from_secs(1));
    assert_eq!((who, why), (None, Ended::MountGone));
    // A trailing slash names the same mount; processes held it too.
    let last = found(&["/run/docker/netns/x", "/run/netns/blue"], &[9], None);
    let (who, why) = who_ended(Some(&last), &mut u, t0 + Duration::from_secs(1));
    assert_eq!(who.map(|t| t.pid), Some(52));
    assert_eq!(why, Ended::Unmounted { held_too: true });
}

#[test]
fn the_latest_of_several_unmounts_of_the_mount_wins() {
    let t0 = Instant::now();
    let mut u = Unmounts::default();
    u.note(Task::named(60, 1, "ip"), path("/run/netns/red"), t0);
    u.note(
        Task::named(61, 1, "ip"),
        path("/run/netns/red"),
        t0 + Duration::from_millis(10),
    );
    let last = found(&["/run/netns/red"], &[], None);
    let (who, _) = who_ended(Some(&last), &mut u, t0 + Duration::from_secs(1));
    assert_eq!(who.map(|t| t.pid), Some(61));
}

#[test]
fn unmounts_are_kept_a_few_seconds_and_at_most_64() {
    let t0 = Instant::now();
    let mut u = Unmounts::default();
    u.note(Task::named(70, 1, "ip"), path("/run/netns/old"), t0);
    let last = found(&["/run/netns/old"], &[], None);
    let late = t0 + UNMOUNT_KEEP + Duration::from_millis(1);
    assert_eq!(
        who_ended(Some(&last), &mut u, late),
        (None, Ended::MountGone)
    );
    assert_eq!(u.len(), 0);
    for i in 0..100u32 {
        u.note(Task::named(i, 1, "umount"), path(&format!("/m/{i}")), t0);
    }
    assert_eq!(u.len(), UNMOUNTS_MAX);
    let first = found(&["/m/0"], &[], None);
    assert_eq!(who_ended(Some(&first), &mut u, t0).1, Ended::MountGone);
    let kept = found(&["/m/99"], &[], None);
    assert_eq!(
        who_ended(Some(&kept), &mut u, t0).0.map(|t| t.pid),
        Some(99)
    );
}

#[test]
fn a_namespace_of_processes_alone_is_ended_by_its_newest_holder() {
    let mut u = Unmounts::default();
    let now = Instant::now();
    // An unmount of an unrelated path does not count.
    u.note(Task::named(80, 1, "umount"), path("/run/netns/x"), now);
    let sleep = Task::named(81, 9, "sleep");
    let last = found(&[], &[81], Some(sleep));
    assert_eq!(
        who_ended(Some(&last), &mut u, now),
        (Some(sleep), Ended::LastHolder { of: 1 })
    );
    let last = found(&[], &[70, 81, 90], Some(sleep));
    assert_eq!(
        who_ended(Some(&last), &mut u, now).1,
        Ended::LastHolder { of: 3 }
    );
    // Neither: the reason, no process.
    assert_eq!(
        who_ended(Some(&found(&[], &[81], None)), &mut u, now),
        (None, Ended::HolderUnread)
    );
    assert_eq!(who_ended(None, &mut u, now), (None, Ended::NotSeen));
    assert_eq!(
        who_ended(Some(&found(&[], &[], None)), &mut u, now),
        (None, Ended::NotSeen)
    );
}

/// The engine's side: an unmount record, then the namespace forgotten:
/// every route it held is a `netns_exit` removal by the unmounter.
#[test]
fn forgotten_routes_name_the_unmounter() {
    let mut e = Engine::new(RequestScope::all());
    let now = Instant::now();
    let route = Route {
        family: Some(Family::Inet),
        table: Some(254),
        dst: Some("10.1.0.0/24".into()),
        rtype: Some("unicast".to_string().into()),
        ..Route::default()
    };
    e.mirror(7).apply(&NlItem {
        seq: 0,
        portid: 0,
        flags: 0,
        obj: NlObj::Route { op: Op::Add, route },
    });
    e.kernel_event(
        crate::collect::kernel_event::KernelEvent::Unmount {
            task: Task::named(4242, 1, "ip"),
            path: path("/run/netns/red"),
        },
        now,
    );
    e.forget(7, Some(&found(&["/run/netns/red"], &[], None)), now);
    let out = e.take_outcomes();
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o.who.map(|t| t.pid), Some(4242));
    assert_eq!(o.cause, Some(Cause::NetnsExit));
    assert_eq!(
        o.note,
        Some(Note::NamespaceGone(Ended::Unmounted { held_too: false }))
    );
    // Forgotten: nothing more.
    e.forget(7, None, now);
    assert!(e.take_outcomes().is_empty());
}
