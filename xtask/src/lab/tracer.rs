//! `tracer watch` as a child: its stdout is read through a pipe by a thread
//! that echoes every line to our stdout and hands it to the lab, which
//! waits for lines (the ready line, the loop line) without sleeping.

use super::signal;
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(100);
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Tracer {
    child: Child,
    lines: Receiver<String>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

pub enum Wait {
    Found,
    TimedOut,
}

impl Tracer {
    /// Starts `tracer watch <args>` with stdout piped, stderr inherited.
    pub fn start(bin: &Path, args: &[OsString]) -> Result<Tracer> {
        let mut cmd = Command::new(bin);
        cmd.arg("watch").args(args);
        println!("lab:   $ {}", crate::process::display(&cmd));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("tracer stdout")?;
        let (tx, lines) = channel();
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            while reader
                .read_until(b'\n', &mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                drop(out);
                let _ = tx.send(line);
                buf.clear();
            }
        });
        Ok(Tracer {
            child,
            lines,
            reader: Some(reader),
            status: None,
        })
    }

    /// Waits up to `timeout` for a line matching `wanted`. Fails if the
    /// tracer exits first or the user interrupts.
    pub fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<Wait> {
        let deadline = Instant::now() + timeout;
        loop {
            if signal::interrupted() {
                bail!("interrupted while waiting for {what}");
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Wait::TimedOut);
            }
            match self.lines.recv_timeout(TICK.min(deadline - now)) {
                Ok(line) if wanted(&line) => return Ok(Wait::Found),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.stop()?;
                    if signal::interrupted() {
                        bail!("interrupted while waiting for {what} (the tracer exited: {status})");
                    }
                    bail!(
                        "the tracer exited ({status}) before printing {what}; its stderr is above"
                    );
                }
            }
        }
    }

    /// Sends SIGINT (the tracer flushes and exits), waits up to 10 s, then
    /// SIGKILL. Returns the exit status; idempotent.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        if self.child.try_wait()?.is_none() {
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGINT) };
            let deadline = Instant::now() + STOP_GRACE;
            while self.child.try_wait()?.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.child.try_wait()?.is_none() {
                eprintln!(
                    "lab: WARNING: the tracer did not exit within {STOP_GRACE:?} of SIGINT; killing it"
                );
                let _ = self.child.kill();
            }
        }
        let status = self.child.wait().context("waiting for the tracer")?;
        if let Some(r) = self.reader.take() {
            let _ = r.join(); // the pipe is closed now: prints what was left
        }
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("lab: WARNING: stopping the tracer: {e:#}");
        }
    }
}

/// The tracer's first stdout line: `ready ...` (text) or
/// `{"kind":"ready",...}` (JSON).
pub fn is_ready_line(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    line.trim_start().starts_with("ready") || compact.contains(r#""kind":"ready""#)
}

/// The tracer's report of a forwarding loop: `{"kind":"loop",...}` (JSON)
/// or, in text, a line whose kind (after the timestamp) is `LOOP`/`loop`.
/// Not `loop_end`, and not the `ready` line.
pub fn is_loop_line(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.starts_with('{') {
        return compact.contains(r#""kind":"loop""#);
    }
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    first.eq_ignore_ascii_case("loop") || second.eq_ignore_ascii_case("loop")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines() {
        assert!(is_ready_line("ready attach=tracepoint netns=tracer-demo-1"));
        assert!(is_ready_line(r#"{"kind":"ready","attach":"tracepoint"}"#));
        assert!(is_ready_line(r#"{ "kind": "ready" }"#));
        assert!(!is_ready_line(r#"{"kind":"rule_del","comm":"ready"}"#));
        assert!(!is_ready_line("12:00:01 rule del pref 5210"));
    }

    #[test]
    fn loop_lines() {
        assert!(is_loop_line(
            r#"{"ts":"x","kind":"loop","iface":"tailscale0","suspect":{"kind":"route_del"}}"#
        ));
        assert!(is_loop_line(
            "2026-04-10T06:52:46.130211Z LOOP      on tailscale0 (netns tl-1-r): in ..."
        ));
        assert!(is_loop_line(
            "2026-04-10T06:52:56.130211Z loop      still looping on tailscale0"
        ));
        assert!(!is_loop_line(r#"{"kind":"loop_end","iface":"tailscale0"}"#));
        assert!(!is_loop_line(r#"{"kind":"route_del","note":"loop"}"#));
        assert!(!is_loop_line(
            "2026-04-10T06:52:46Z loop_end  loop on tailscale0 stopped"
        ));
        assert!(!is_loop_line(
            "ready 2026-04-10T06:52:46Z kernel 6.18 hooks loop"
        ));
        assert!(!is_loop_line(
            "peer: got 100.98.98.126 > 192.168.1.90 (looped back)"
        ));
    }
}
