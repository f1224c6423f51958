//! Tests of `enrich::netns`: names by mount, owner and pid, the
//! /run/netns cache, and names by an event's time on reused inodes.
use super::*;
use crate::test_util::TempDir;

fn ino(path: &Path) -> u32 {
    fs::metadata(path).unwrap().ino() as u32
}

#[test]
fn own_inode_matches_proc_self() {
    let names = NetnsNames::new().unwrap();
    assert_eq!(names.own_inode(), ino(Path::new("/proc/self/ns/net")));
}

#[test]
fn own_namespace_without_name_is_none() {
    let tmp = TempDir::new("netns-own");
    let mut names = NetnsNames::with_dir(tmp.path(), true).unwrap();
    let own = names.own_inode();
    assert_eq!(names.name(own), None);
}

#[test]
fn nsfs_files_are_named() {
    // /proc/self/ns holds (symlinks to) nsfs files, like /run/netns does.
    let mut names = NetnsNames::with_dir("/proc/self/ns", true).unwrap();
    let own = names.own_inode();
    assert_eq!(names.name(own).as_deref(), Some("net"));
}

#[test]
fn plain_files_are_not_namespaces() {
    let tmp = TempDir::new("netns-plain");
    fs::write(tmp.path().join("stale"), "").unwrap();
    let mut names = NetnsNames::with_dir(tmp.path(), true).unwrap();
    assert_eq!(names.name(ino(&tmp.path().join("stale"))), None);
}

#[test]
fn miss_rescans_and_deleted_names_disappear() {
    let tmp = TempDir::new("netns-rescan");
    let blue = tmp.path().join("blue");
    fs::write(&blue, "").unwrap();
    let mut names = NetnsNames::with_dir(tmp.path(), false).unwrap();
    names.rescan_interval = Duration::ZERO;
    assert_eq!(names.name(ino(&blue)).as_deref(), Some("blue"));

    let red = tmp.path().join("red");
    fs::write(&red, "").unwrap();
    assert_eq!(names.name(ino(&red)).as_deref(), Some("red"));

    let blue_ino = ino(&blue);
    fs::remove_file(&blue).unwrap();
    names.rescan(Instant::now());
    assert_eq!(names.name(blue_ino), None);
}

#[test]
fn rescans_are_rate_limited() {
    let tmp = TempDir::new("netns-rate");
    let mut names = NetnsNames::with_dir(tmp.path(), false).unwrap();
    names.rescan_interval = Duration::from_secs(3600);
    assert_eq!(names.name(1), None); // first lookup scans
    let late = tmp.path().join("late");
    fs::write(&late, "").unwrap();
    assert_eq!(names.name(ino(&late)), None, "rescanned too early");

    let t0 = Instant::now();
    names.last_scan = Some(t0);
    names.rescan_interval = RESCAN_INTERVAL;
    assert!(!names.rescan_due(t0 + Duration::from_millis(199)));
    assert!(names.rescan_due(t0 + RESCAN_INTERVAL));
}

#[test]
fn missing_directory_has_no_names() {
    let mut names = NetnsNames::with_dir("/nonexistent/netns", true).unwrap();
    assert_eq!(names.name(names.own_inode()), None);
}

fn found(mounts: &[&str], pids: &[u32]) -> Found {
    Found {
        mounts: mounts.iter().map(PathBuf::from).collect(),
        pids: pids.to_vec(),
        newest: None,
    }
}

#[test]
fn owner_is_the_oldest_container_else_the_oldest_pid() {
    let info = |pid: u32| match pid {
        10 => Some((500, None)),
        20 => Some((100, None)),
        30 => Some((300, Some("docker:4f1d2c3b4a59".to_string()))),
        _ => None,
    };
    assert_eq!(owner_name(&[10, 20], info).as_deref(), Some("pid:20"));
    assert_eq!(
        owner_name(&[10, 20, 30], info).as_deref(),
        Some("docker:4f1d2c3b4a59")
    );
    assert_eq!(owner_name(&[40], info), None);
    assert_eq!(owner_name(&[], info), None);
}

#[test]
fn mount_names_come_first_run_netns_before_others() {
    assert_eq!(
        mount_name(&found(&["/run/docker/netns/abc"], &[1])).as_deref(),
        Some("abc")
    );
    assert_eq!(
        mount_name(&found(&["/a/zz", "/run/netns/lab"], &[])).as_deref(),
        Some("lab")
    );
    assert_eq!(mount_name(&found(&[], &[1])), None);
}

/// A scan that finds inode 7 mounted as /run/netns/NAME, and nothing else.
fn mounted_as_7(name: &str) -> Scan {
    let mut scan = Scan::new();
    scan.insert(7, found(&[&format!("/run/netns/{name}")], &[]));
    scan
}

#[test]
fn a_reused_inode_names_each_event_after_the_namespace_it_happened_in() {
    let mut names = NetnsNames::with_dir("/nonexistent/netns", true).unwrap();
    let now = Instant::now();
    names.assign_at(&mounted_as_7("a"), 100);
    names.assign_at(&Scan::new(), 200);
    // "b" took inode 7 at 250 and is not found yet.
    assert_eq!(names.name_when(7, Some(150), now).as_deref(), Some("a"));
    assert_eq!(names.name_when(7, Some(250), now), None, "not a's");
    assert_eq!(
        names.name_at(7, now).as_deref(),
        Some("a"),
        "no time: the last"
    );
    names.assign_at(&mounted_as_7("b"), 300);
    assert_eq!(
        names.name_when(7, Some(150), now).as_deref(),
        Some("a"),
        "late"
    );
    assert_eq!(names.name_when(7, Some(250), now).as_deref(), Some("b"));
    assert_eq!(names.name_when(7, Some(350), now).as_deref(), Some("b"));
    names.assign_at(&Scan::new(), 400);
    names.assign_at(&mounted_as_7("c"), 500);
    assert_eq!(names.name_when(7, Some(150), now).as_deref(), Some("a"));
    assert_eq!(names.name_when(7, Some(350), now).as_deref(), Some("b"));
    assert_eq!(names.name_when(7, Some(450), now).as_deref(), Some("c"));
    assert_eq!(names.name_when(7, None, now).as_deref(), Some("c"));
}

#[test]
fn an_event_before_a_scan_that_did_not_find_its_inode_is_not_named_after_a_later_namespace() {
    let mut names = NetnsNames::with_dir("/nonexistent/netns", true).unwrap();
    let now = Instant::now();
    names.assign_at(&Scan::new(), 100);
    // "x" held inode 7 from 50 to 90, gone before the scan at 100;
    // "y" took it later (a name from the time between two scans is
    // the later one's: the tracer cannot tell).
    names.assign_at(&mounted_as_7("y"), 200);
    assert_eq!(names.name_when(7, Some(60), now), None, "x, never seen");
    assert_eq!(names.name_when(7, Some(180), now), Some("y".into()));
    names.assign_at(&Scan::new(), 300);
    assert_eq!(names.name_when(7, Some(50), now), None);
    assert_eq!(names.name_when(7, Some(250), now), Some("y".into()));
    assert_eq!(
        names.name_when(7, Some(350), now),
        None,
        "after y, not found"
    );
    // Not watched, so nothing held it: another mount's name on the
    // same inode at the next scan is another namespace.
    names.assign_at(&mounted_as_7("p"), 400);
    names.assign_at(&mounted_as_7("q"), 500);
    assert_eq!(names.name_when(7, Some(450), now), Some("p".into()));
    assert_eq!(names.name_when(7, Some(550), now), Some("q".into()));
}

#[test]
fn assigned_names_follow_the_scan() {
    let mut names = NetnsNames::with_dir("/nonexistent/netns", true).unwrap();
    let own = names.own_inode();
    let me = std::process::id();
    let mut scan = Scan::new();
    scan.insert(own, found(&[], &[me]));
    scan.insert(7, found(&["/run/netns/red"], &[]));
    scan.insert(8, found(&["/tmp/x/red"], &[]));
    scan.insert(9, found(&[], &[me]));
    scan.insert(10, found(&[], &[u32::MAX]));
    names.assign(&scan);
    assert_eq!(
        names.name(own),
        None,
        "the own namespace is named only by a mount"
    );
    assert_eq!(names.name(7).as_deref(), Some("red"));
    assert_eq!(
        names.name(8).as_deref(),
        Some("/tmp/x/red"),
        "clash: full path"
    );
    assert_eq!(names.name(9), Some(format!("pid:{me}")));
    assert_eq!(names.name(10), None, "no process left to name it by");

    // Later its oldest process is gone: the name stays. A bind mount
    // appears: it wins.
    scan.insert(9, found(&[], &[u32::MAX]));
    names.assign(&scan);
    assert_eq!(names.name(9), Some(format!("pid:{me}")));
    scan.insert(9, found(&["/tmp/y/blue"], &[me]));
    names.assign(&scan);
    assert_eq!(names.name(9).as_deref(), Some("blue"));

    // Gone: the name is kept for the namespace's last events.
    scan.remove(&7);
    names.assign(&scan);
    assert_eq!(names.name(7).as_deref(), Some("red"));
    assert_eq!(names.name(8).as_deref(), Some("red"), "no clash any more");
}

#[test]
fn own_process_owner_reads_proc() {
    let (start, _) = proc_owner(std::process::id()).unwrap();
    assert!(start > 0);
    assert_eq!(proc_owner(u32::MAX), None);
}

#[test]
fn a_fresh_empty_plain_file_is_an_ip_netns_add_under_way() {
    let dir = TempDir::new("netns-pending");
    let names = NetnsNames::with_dir(dir.path(), true).unwrap();
    assert!(!names.mount_pending());
    let f = fs::File::create(dir.path().join("red")).unwrap();
    assert!(names.mount_pending());
    // Left by a crash long ago: not under way.
    f.set_modified(SystemTime::now() - ADDING_WINDOW * 2)
        .unwrap();
    assert!(!names.mount_pending());
    fs::write(dir.path().join("blue"), b"x").unwrap();
    assert!(!names.mount_pending(), "not empty: not iproute2's");
}

#[test]
fn mounted_now_looks_at_the_directory_again() {
    // Soak finding 12: the scan read the mounts, `ip netns add` mounted,
    // then the scan found the namespace by its process alone. What is
    // mounted when the scan is used is read afresh, cache or not.
    let dir = TempDir::new("netns-mounted-now");
    let mut names = NetnsNames::with_dir(dir.path(), false).unwrap();
    assert!(names.mounted_now().is_empty());
    let _ = names.name(1);
    fs::write(dir.path().join("red"), b"").unwrap();
    let inode = fs::metadata(dir.path().join("red")).unwrap().ino() as u32;
    assert_eq!(names.mounted_now(), HashSet::from([inode]));
    // With nsfs required (as in a session), a plain file is not a mount.
    let strict = NetnsNames::with_dir(dir.path(), true).unwrap();
    assert!(strict.mounted_now().is_empty());
}
