//! Running child commands: captured (quick checks) or streamed live with
//! the tail of their stderr kept for the error message.

use anyhow::{Context, Result, bail};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

/// How many stderr lines a failure message repeats.
const TAIL_LINES: usize = 25;

/// The command line as a shell would show it (program and arguments, with
/// the environment overrides first).
pub fn display(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter(|(k, _)| *k != "PATH")
        .filter_map(|(k, v)| {
            v.map(|v| format!("{}={}", k.to_string_lossy(), quote(&v.to_string_lossy())))
        })
        .collect();
    parts.push(quote(&cmd.get_program().to_string_lossy()));
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%~^".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` to completion with its output captured (stdin closed).
/// Fails only if it cannot be started; the caller looks at the status.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{}`", display(cmd)))
}

/// Runs `cmd` with stdout passed through and stderr echoed live; on a
/// non-zero exit fails with a message naming `step`, the command and the
/// last lines of its stderr.
pub fn run_streamed(step: &str, cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{step}: cannot run `{shown}`"))?;
    let stderr = child.stderr.take().context("child stderr")?;
    let echo = std::thread::spawn(move || {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        while reader
            .read_until(b'\n', &mut buf)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            let _ = std::io::stderr().write_all(&buf);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(String::from_utf8_lossy(&buf).trim_end().to_string());
            buf.clear();
        }
        tail
    });
    let status = child
        .wait()
        .with_context(|| format!("{step}: waiting for `{shown}`"))?;
    let tail = echo.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "{}",
            failure_message(
                step,
                &shown,
                &status.to_string(),
                tail.iter().map(String::as_str)
            )
        );
    }
    Ok(())
}

/// Fails with the step, the command and its stderr tail when `out` is a
/// failure (for captured commands).
pub fn check_output(step: &str, cmd: &Command, out: &Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    bail!(
        "{}",
        failure_message(
            step,
            &display(cmd),
            &out.status.to_string(),
            tail.iter().copied()
        )
    )
}

fn failure_message<'a>(
    step: &str,
    cmd: &str,
    status: &str,
    tail: impl Iterator<Item = &'a str>,
) -> String {
    let tail: Vec<&str> = tail.collect();
    let mut msg = format!("{step} failed ({status}): `{cmd}`");
    if tail.is_empty() {
        msg.push_str(" (no stderr output)");
    } else {
        msg.push_str(&format!(
            "\n--- last {} line(s) of its stderr ---\n{}",
            tail.len(),
            tail.join("\n")
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_needs_it() {
        let mut c = Command::new("ip");
        c.args(["rule", "add", "fwmark", "0x80000/0xff0000", "a b"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22");
        assert_eq!(
            display(&c),
            "LLVM_PREFIX=/usr/lib/llvm-22 ip rule add fwmark 0x80000/0xff0000 'a b'"
        );
    }

    #[test]
    fn failure_message_names_step_and_tail() {
        let m = failure_message(
            "setup step apt",
            "apt-get update",
            "exit status: 100",
            ["E: oops"].into_iter(),
        );
        assert!(m.starts_with("setup step apt failed (exit status: 100): `apt-get update`"));
        assert!(m.ends_with("E: oops"));
    }
}
