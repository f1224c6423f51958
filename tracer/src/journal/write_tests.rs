use std::{fs, path::Path, time::Duration};

use super::*;

fn cfg(dir: &Path) -> Config {
    Config {
        dir: dir.to_path_buf(),
        max_file_bytes: 1 << 20,
        max_file_age: Duration::from_secs(3600),
        max_total_bytes: 1 << 30,
        max_age: Duration::from_secs(86400),
        fsync_every: Duration::from_millis(0),
        max_pending_bytes: 1 << 20,
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracer-journal-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Makes every write fail with ENOSPC, as a full disk does (the active
/// file becomes /dev/full); returns the file it replaced.
fn fill_disk(j: &mut Journal) -> Active {
    let good = j.active.take().unwrap();
    j.active = Some(Active {
        path: PathBuf::from("/dev/full"),
        file: OpenOptions::new().append(true).open("/dev/full").unwrap(),
        len: 0,
        opened: SystemTime::now(),
        dirty: false,
    });
    good
}

/// Space returns: the file `fill_disk` took is back, and the next flush
/// retries at once.
fn free_disk(j: &mut Journal, good: Active) {
    j.active = Some(good);
    j.failing = j.failing.take().map(|(e, _)| (e, Instant::now() - RETRY));
}

/// Every line of every journal file, oldest file first.
fn all_lines(dir: &Path) -> Vec<String> {
    list(dir)
        .unwrap()
        .into_iter()
        .flat_map(|(p, _, _)| {
            let text = fs::read_to_string(&p).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends in a partial line",
                p.display()
            );
            text.lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn lines_reach_the_file_whole_and_in_order() {
    let d = tempdir("order");
    let mut j = Journal::open(cfg(&d)).unwrap();
    for i in 0..100 {
        j.write_line(&format!("{{\"n\":{i}}}"));
    }
    j.flush();
    let lines = all_lines(&d);
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[99], "{\"n\":99}");
    assert_eq!(j.stats().lines_written, 100);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn rotates_by_size_and_keeps_every_line() {
    let d = tempdir("rotate");
    let mut c = cfg(&d);
    c.max_file_bytes = 1000;
    let mut j = Journal::open(c).unwrap();
    for i in 0..500 {
        j.write_line(&format!("{{\"n\":{i:05}}}"));
        if i % 10 == 9 {
            j.flush();
        }
    }
    j.close();
    let files = list(&d).unwrap();
    assert!(files.len() >= 5, "{} files", files.len());
    let lines = all_lines(&d);
    let want: Vec<String> = (0..500).map(|i| format!("{{\"n\":{i:05}}}")).collect();
    assert_eq!(lines, want);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn removes_the_oldest_files_beyond_the_total_size() {
    let d = tempdir("retain");
    let mut c = cfg(&d);
    c.max_file_bytes = 1000;
    c.max_total_bytes = 3000;
    let mut j = Journal::open(c).unwrap();
    for i in 0..1000 {
        j.write_line(&format!("{{\"n\":{i:05}}}"));
        j.flush();
    }
    j.close();
    let total: u64 = list(&d).unwrap().iter().map(|f| f.1).sum();
    assert!(total <= 3000 + 1000, "total {total}");
    let lines = all_lines(&d);
    // What is kept is the newest, contiguous to the end.
    assert_eq!(lines.last().unwrap(), "{\"n\":00999}");
    let first: usize = lines[0][5..10].parse().unwrap();
    assert_eq!(lines.len(), 1000 - first);
    assert!(j.stats().files_removed > 0);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_partial_last_line_is_cut_at_start() {
    let d = tempdir("repair");
    let old = d.join("tracer-20260410T155246.000000Z.jsonl");
    fs::write(&old, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
    let _j = Journal::open(cfg(&d)).unwrap();
    assert_eq!(fs::read_to_string(&old).unwrap(), "{\"a\":1}\n{\"b\":2}\n");
    // A file without any newline is emptied.
    let d2 = tempdir("repair2");
    let old2 = d2.join("tracer-20260410T155246.000000Z.jsonl");
    fs::write(&old2, "{\"c\":").unwrap();
    let _j2 = Journal::open(cfg(&d2)).unwrap();
    assert_eq!(fs::read_to_string(&old2).unwrap(), "");
    fs::remove_dir_all(&d).unwrap();
    fs::remove_dir_all(&d2).unwrap();
}

#[test]
fn a_failing_write_is_reported_once_held_and_resumed() {
    let d = tempdir("full");
    let mut c = cfg(&d);
    c.max_pending_bytes = 100;
    let mut j = Journal::open(c).unwrap();
    j.write_line("{\"before\":1}");
    j.flush();
    let good = fill_disk(&mut j);
    for i in 0..20 {
        j.write_line(&format!("{{\"during\":{i}}}"));
        j.flush();
    }
    let h = j.take_health();
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(
        matches!(&h[0], Health::Failed { error, .. } if error.contains("No space left")),
        "{h:?}"
    );
    assert!(j.stats().failing);
    assert!(j.stats().lines_dropped > 0);
    // Space returns: the held lines go out, in order, and the drop count is
    // reported once.
    free_disk(&mut j, good);
    j.flush();
    let h = j.take_health();
    let dropped = j.stats().lines_dropped;
    assert_eq!(
        h,
        vec![Health::Resumed {
            path: j.active_path().unwrap().display().to_string(),
            dropped
        }]
    );
    let lines = all_lines(&d);
    assert_eq!(lines[0], "{\"before\":1}");
    assert_eq!(lines.len() as u64, 1 + 20 - dropped);
    assert_eq!(lines[1], "{\"during\":0}");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn same_instant_names_sort_in_creation_order() {
    let d = tempdir("names");
    let a = new_file(&d).unwrap().path;
    let b = new_file(&d).unwrap().path;
    let c = new_file(&d).unwrap().path;
    let mut names = vec![c.clone(), a.clone(), b.clone()];
    names.sort();
    assert_eq!(names, vec![a, b, c]);
    for p in &names {
        assert!(is_journal_file(p.file_name().unwrap().to_str().unwrap()));
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_long_burst_goes_out_in_pieces_and_rotates_on_time() {
    let d = tempdir("burst");
    let mut c = cfg(&d);
    c.max_file_bytes = 2 << 20;
    let mut j = Journal::open(c).unwrap();
    let line = "x".repeat(1000);
    // 10 MB without a single flush, as a snapshot of a full table is.
    for _ in 0..10_000 {
        j.write_line(&line);
        assert!(j.pending.len() <= WRITE_AT + 1001);
    }
    j.close();
    let files = list(&d).unwrap();
    assert!(files.len() >= 4, "{} files", files.len());
    assert!(
        files
            .iter()
            .all(|f| f.1 <= (2 << 20) + WRITE_AT as u64 + 1001)
    );
    assert_eq!(all_lines(&d).len(), 10_000);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn one_journal_per_directory_and_free_again_once_closed() {
    let dir = tempdir("lock");
    let first = Journal::open(cfg(&dir)).unwrap();
    let pid = std::process::id();
    assert_eq!(
        fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
        format!("{pid}\n")
    );
    // flock locks belong to the open file, so a second open in the same
    // process conflicts as another recorder's would.
    let err = Journal::open(cfg(&dir)).err().expect("a second journal");
    assert_eq!(
        err.to_string(),
        format!(
            "--journal {} is already being recorded by another tracer (pid {pid}); one recorder per journal directory",
            dir.display()
        )
    );
    // The lock file is not a journal file.
    assert!(!crate::journal::is_journal_file(LOCK_FILE));
    drop(first);
    let again = Journal::open(cfg(&dir)).unwrap();
    drop(again);
    let _ = fs::remove_dir_all(&dir);
}

/// A backlog held while the disk was full goes out file by file, with
/// retention between files: no file beyond `max_file_bytes`, and never more
/// on disk than the total limit and one file, however large the backlog.
/// (Written into one file, as before, a backlog larger than the space freed
/// on a small disk failed again at every retry: the soak's 8 MiB tmpfs and
/// 32 MiB of held events never resumed.)
#[test]
fn a_backlog_goes_out_file_by_file_within_the_limits() {
    let d = tempdir("backlog");
    let mut c = cfg(&d);
    c.max_file_bytes = 1000;
    c.max_total_bytes = 3000;
    let mut j = Journal::open(c).unwrap();
    j.write_line("{\"before\":1}");
    j.flush();
    let good = fill_disk(&mut j);
    // 20 KB held: 20 times a file.
    for i in 0..200 {
        j.write_line(&format!(
            "{{\"during\":{i:05},\"pad\":\"{}\"}}",
            "x".repeat(70)
        ));
        j.flush();
    }
    assert!(j.stats().failing);
    assert_eq!(j.stats().lines_dropped, 0);
    free_disk(&mut j, good);
    j.flush();
    assert!(!j.stats().failing);
    assert_eq!(
        j.take_health()[1..],
        [Health::Resumed {
            path: j.active_path().unwrap().display().to_string(),
            dropped: 0
        }]
    );
    assert_eq!(j.stats().lines_written, 201);
    assert!(j.stats().files_removed >= 15, "{:?}", j.stats());
    let files = list(&d).unwrap();
    assert!(files.iter().all(|f| f.1 <= 1000), "{files:?}");
    let total: u64 = files.iter().map(|f| f.1).sum();
    assert!(total <= 3000 + 1000, "total {total}");
    // The newest lines are kept, contiguous to the last.
    let lines = all_lines(&d);
    assert!(lines.last().unwrap().starts_with("{\"during\":00199,"));
    let first: usize = lines[0][10..15].parse().unwrap();
    assert_eq!(lines.len(), 200 - first);
    fs::remove_dir_all(&d).unwrap();
}

/// Once the disk takes writes again and the held lines are written, the
/// memory that held them is given back (the soak's recorder kept its 32 MiB
/// backlog buffer resident for the rest of the hour after the first fill).
#[test]
fn the_backlog_memory_goes_back_once_written() {
    let d = tempdir("giveback");
    let mut c = cfg(&d);
    c.max_pending_bytes = 8 << 20;
    c.max_file_bytes = 64 << 20;
    c.max_total_bytes = 256 << 20;
    let mut j = Journal::open(c).unwrap();
    let good = fill_disk(&mut j);
    let line = "x".repeat(1000);
    j.write_line(&line);
    j.flush();
    assert!(j.stats().failing);
    for _ in 0..6000 {
        j.write_line(&line);
    }
    assert!(j.pending.capacity() >= 6 << 20, "the backlog is held");
    free_disk(&mut j, good);
    j.flush();
    assert!(!j.stats().failing);
    assert_eq!(j.stats().pending_bytes, 0);
    assert!(
        j.pending.capacity() <= 2 * WRITE_AT,
        "capacity {} kept after the backlog was written",
        j.pending.capacity()
    );
    assert_eq!(all_lines(&d).len(), 6001);
    fs::remove_dir_all(&d).unwrap();
}
