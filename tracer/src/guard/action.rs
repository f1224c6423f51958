//! Running `--on-violation`: the command gets the violation's JSON on stdin;
//! at most one run per interval (later violations are counted and reported
//! with the next run), a time limit, and the first bytes of its output kept.
use std::{
    process::Stdio,
    sync::mpsc::{Receiver, Sender, channel},
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::event::GuardAction;

/// Bytes of stdout and stderr kept.
const KEEP: usize = 4096;

pub struct Runner {
    command: String,
    interval: Duration,
    timeout: Duration,
    last_run: Option<Instant>,
    suppressed: u64,
    done_tx: Sender<GuardAction>,
    done_rx: Receiver<GuardAction>,
}

impl Runner {
    pub fn new(command: String, interval: Duration, timeout: Duration) -> Runner {
        let (done_tx, done_rx) = channel();
        Runner {
            command,
            interval,
            timeout,
            last_run: None,
            suppressed: 0,
            done_tx,
            done_rx,
        }
    }

    /// Run the command for a violation, unless one ran less than an interval
    /// ago (then count it).
    pub fn violation(&mut self, expectation: &str, json: String) {
        let now = Instant::now();
        if self
            .last_run
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            self.suppressed += 1;
            return;
        }
        self.last_run = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        let (command, timeout, tx) = (self.command.clone(), self.timeout, self.done_tx.clone());
        let expectation = expectation.to_string();
        tokio::spawn(async move {
            let mut a = run(&command, json, timeout).await;
            a.expectation = expectation;
            a.suppressed = suppressed;
            let _ = tx.send(a);
        });
    }

    /// Commands that finished since the last call.
    pub fn finished(&mut self) -> Vec<GuardAction> {
        self.done_rx.try_iter().collect()
    }
}

async fn read_some(r: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let Some(mut r) = r else {
        return String::new();
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read to the end (so the command never blocks on a full pipe), keep
    // the first KEEP bytes.
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = KEEP.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn run(command: &str, json: String, timeout: Duration) -> GuardAction {
    let started = Instant::now();
    let mut a = GuardAction {
        expectation: String::new(),
        command: command.to_string(),
        exit_code: None,
        error: None,
        stdout: String::new(),
        stderr: String::new(),
        duration_ms: 0,
        suppressed: 0,
    };
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            a.error = Some(format!("cannot start /bin/sh: {e}"));
            return a;
        }
    };
    let stdin = child.stdin.take();
    let feed = async move {
        if let Some(mut s) = stdin {
            // A command that ignores its input may close it early: fine.
            let _ = s.write_all(json.as_bytes()).await;
            let _ = s.write_all(b"\n").await;
        }
    };
    let out = read_some(child.stdout.take());
    let err = read_some(child.stderr.take());
    let all = async { tokio::join!(feed, out, err, child.wait()) };
    match tokio::time::timeout(timeout, all).await {
        Ok(((), out, err, status)) => {
            a.stdout = out;
            a.stderr = err;
            match status {
                Ok(s) => {
                    a.exit_code = s.code();
                    if a.exit_code.is_none() {
                        a.error = Some(format!("ended by {s}"));
                    }
                }
                Err(e) => a.error = Some(format!("waiting for it: {e}")),
            }
        }
        Err(_) => {
            a.error = Some(format!("timed out after {} s; killed", timeout.as_secs()));
        }
    }
    a.duration_ms = started.elapsed().as_millis() as u64;
    a
}
