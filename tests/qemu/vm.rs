//! Booting a kernel + initramfs under QEMU (TCG) and reading what the
//! scenario printed on the serial console.

use crate::host::{self, last_lines, say};
use crate::initramfs::{DMESG_SECTION, EXIT_MARKER_PREFIX, Initramfs, SCENARIO_START_MARKER};
use crate::kernel::KernelFiles;
use anyhow::{Context, Result, anyhow, bail};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Console lines quoted in failure messages.
pub const FAILURE_TAIL_LINES: usize = 60;

/// QEMU settings; [`run_vm`] uses the defaults with its timeout.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Wall-clock limit for the whole VM run; qemu is killed when it expires.
    pub timeout: Duration,
    /// Guest RAM in MiB (default 1024).
    pub memory_mib: u32,
    /// Guest CPUs (default 2).
    pub cpus: u32,
    /// Appended to the kernel command line `console=ttyS0 panic=-1 quiet`.
    pub extra_append: String,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            timeout: Duration::from_secs(300),
            memory_mib: 1024,
            cpus: 2,
            extra_append: String::new(),
        }
    }
}

/// What a VM run produced. Only returned when the scenario ran to completion
/// (the exit marker was seen); timeouts and crashes are errors.
#[derive(Debug, Clone)]
pub struct VmOutput {
    /// `"<spec name> <release>"`, for messages.
    pub kernel: String,
    /// The whole serial console, `\r` and terminal escapes removed.
    pub console: String,
    /// The scenario's exit status ([`crate::SETUP_FAILED_EXIT`] if `/init`'s
    /// setup failed and the scenario did not run).
    pub exit_code: i32,
    /// From starting qemu to `/init` starting the scenario (boot to shell).
    pub boot_time: Option<Duration>,
    /// From starting qemu to qemu exiting.
    pub total_time: Duration,
}

/// Boots `kernel` with `initramfs` (a file built by [`Initramfs::build`]) using
/// `qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 1024 -smp 2 -nographic -no-reboot`
/// and `console=ttyS0 panic=-1 quiet`, waits at most `timeout`, and returns
/// the console output. Errors (with the last console lines) if qemu cannot
/// start, the timeout expires, or the VM stops without the scenario's exit
/// marker (kernel panic, broken `/init`). A failing scenario is *not* an error
/// here: see [`VmOutput::ensure_success`].
///
/// Set `QEMU_VM_ECHO=1` to copy the console live to stderr.
pub fn run_vm(kernel: &KernelFiles, initramfs: &Path, timeout: Duration) -> Result<VmOutput> {
    run_vm_with(
        kernel,
        initramfs,
        &VmOptions {
            timeout,
            ..VmOptions::default()
        },
    )
}

/// The guest kernel crashed before `/init` started the scenario, so nothing
/// of ours had run yet. Seen once in CI: an `int3` oops in `sched_clock_cpu`
/// while the 6.12 kernel patched its own text during boot under TCG.
#[derive(Debug)]
pub struct CrashBeforeScenario(pub String);

impl std::fmt::Display for CrashBeforeScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CrashBeforeScenario {}

/// Boot attempts when the guest kernel crashes before the scenario starts.
const BOOT_ATTEMPTS: u32 = 2;

/// [`run_vm`] with explicit [`VmOptions`]. A guest kernel that crashes before
/// the scenario starts (see [`CrashBeforeScenario`]) is booted once more, and
/// the retry is printed; a crash or failure after the scenario started is
/// never retried.
pub fn run_vm_with(kernel: &KernelFiles, initramfs: &Path, opts: &VmOptions) -> Result<VmOutput> {
    let mut attempt = 1;
    loop {
        match boot_once(kernel, initramfs, opts) {
            Err(e)
                if attempt < BOOT_ATTEMPTS && e.downcast_ref::<CrashBeforeScenario>().is_some() =>
            {
                say!(
                    "RETRYING: the guest kernel crashed before the scenario started \
                     (attempt {attempt} of {BOOT_ATTEMPTS}):\n{e:#}"
                );
                attempt += 1;
            }
            r => return r,
        }
    }
}

fn boot_once(kernel: &KernelFiles, initramfs: &Path, opts: &VmOptions) -> Result<VmOutput> {
    host::ensure_host_tools()?;
    let arch = kernel.spec.arch;
    let append = format!(
        "console={} panic=-1 quiet {}",
        crate::guest::console(arch),
        opts.extra_append
    )
    .trim()
    .to_string();
    // x86: one host thread for all vCPUs (see [`CrashBeforeScenario`]).
    let mut cmd = crate::guest::qemu_command(arch)?;
    cmd.args([
        "-m",
        &opts.memory_mib.to_string(),
        "-smp",
        &opts.cpus.to_string(),
    ])
    .args(["-nographic", "-no-reboot", "-nic", "none"])
    .arg("-kernel")
    .arg(&kernel.vmlinuz)
    .arg("-initrd")
    .arg(initramfs)
    .args(["-append", &append])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let label = format!("{} {}", kernel.spec.name, kernel.release);
    let cmdline = host::display_cmd(&cmd);
    say!("booting {label}: {cmdline}");

    let start = Instant::now();
    let mut guard = KillOnDrop(Some(
        cmd.spawn()
            .with_context(|| format!("starting `{cmdline}`"))?,
    ));
    let child = guard.0.as_mut().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();

    let console = Arc::new(Mutex::new((Vec::<u8>::new(), None::<Duration>)));
    let echo = std::env::var_os("QEMU_VM_ECHO").is_some_and(|v| !v.is_empty() && v != "0");
    let reader = {
        let console = Arc::clone(&console);
        thread::spawn(move || {
            let marker = SCENARIO_START_MARKER.as_bytes();
            let mut buf = [0u8; 16384];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if echo {
                            let _ = std::io::stderr().write_all(&buf[..n]);
                        }
                        let mut c = console.lock().unwrap();
                        let from = c.0.len().saturating_sub(marker.len());
                        c.0.extend_from_slice(&buf[..n]);
                        if c.1.is_none() && c.0[from..].windows(marker.len()).any(|w| w == marker) {
                            c.1 = Some(start.elapsed());
                        }
                    }
                }
            }
        })
    };
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });

    let mut timed_out = false;
    let status: Option<ExitStatus> = loop {
        if let Some(st) = child.try_wait().context("waiting for qemu")? {
            break Some(st);
        }
        if start.elapsed() > opts.timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let total_time = start.elapsed();
    guard.0 = None;
    let _ = reader.join();
    let qemu_stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let (raw, boot_time) = {
        let c = console.lock().unwrap();
        (c.0.clone(), c.1)
    };
    let text = clean_console(&String::from_utf8_lossy(&raw));
    say!(
        "{label}: qemu finished in {:.1}s (boot to scenario {})",
        total_time.as_secs_f64(),
        boot_time
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .unwrap_or_else(|| "never".into())
    );

    let context = || {
        let mut s = format!(
            "\n--- last {FAILURE_TAIL_LINES} console lines ({label}) ---\n{}",
            last_lines(&text, FAILURE_TAIL_LINES)
        );
        if !qemu_stderr.trim().is_empty() {
            s.push_str(&format!(
                "\n--- qemu stderr ---\n{}",
                last_lines(&qemu_stderr, 20)
            ));
        }
        s
    };
    if timed_out {
        bail!(
            "VM {label} timed out after {:?} (qemu killed){}",
            opts.timeout,
            context()
        );
    }
    let Some(exit_code) = find_exit_code(&text) else {
        if boot_time.is_none() {
            return Err(CrashBeforeScenario(format!(
                "VM {label} stopped ({}) before /init started the scenario \
                 (guest kernel crash during boot){}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                context()
            ))
            .into());
        }
        bail!(
            "VM {label} stopped ({}) without reporting the scenario's exit status \
             (kernel panic or /init failure?){}",
            status.map(|s| s.to_string()).unwrap_or_default(),
            context()
        );
    };
    Ok(VmOutput {
        kernel: label,
        console: text,
        exit_code,
        boot_time,
        total_time,
    })
}

/// Builds `initramfs` for `kernel` into a temporary file under the cache,
/// boots it with [`run_vm`] and removes the file (kept if `QEMU_VM_KEEP` is set).
pub fn run_scenario(
    kernel: &KernelFiles,
    initramfs: &Initramfs,
    timeout: Duration,
) -> Result<VmOutput> {
    let path = host::cache_dir()?.join("tmp").join(format!(
        "initramfs-{}-{}.cpio",
        kernel.spec.name,
        host::unique_suffix()
    ));
    initramfs.build(kernel, &path)?;
    let r = run_vm(kernel, &path, timeout);
    if std::env::var_os("QEMU_VM_KEEP").is_none() {
        let _ = fs::remove_file(&path);
    }
    r
}

/// Returns `Some(reason)` if this host's qemu cannot emulate x86-64 with TCG
/// (the only case in which VM tests may skip). Installs the host packages first,
/// so a missing qemu is an error, not a reason.
pub fn tcg_unavailable_reason() -> Result<Option<String>> {
    host::ensure_host_tools()?;
    let qemu = host::which("qemu-system-x86_64")
        .context("qemu-system-x86_64 not found (Debian package qemu-system-x86)")?;
    let out = Command::new(&qemu)
        .args(["-accel", "help"])
        .output()
        .with_context(|| format!("running {} -accel help", qemu.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Ok(Some(format!(
            "{} -accel help failed: {}",
            qemu.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    if !text.lines().any(|l| l.trim() == "tcg") {
        return Ok(Some(format!(
            "{} was built without TCG (accelerators: {})",
            qemu.display(),
            text.trim()
        )));
    }
    Ok(None)
}

struct KillOnDrop(Option<Child>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Removes `\r`, terminal escape sequences and other control characters
/// (keeps `\n` and `\t`).
fn clean_console(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            // ESC [ ... final: a CSI sequence; ESC <char>: a two-character one.
            '\x1b' => {
                if it.next() == Some('[') {
                    for c in it.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn find_exit_code(text: &str) -> Option<i32> {
    text.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix(EXIT_MARKER_PREFIX)?
            .strip_suffix(" ===")?
            .trim()
            .parse()
            .ok()
    })
}

fn begin(name: &str) -> String {
    format!("=== BEGIN {name} ===")
}
fn end(name: &str) -> String {
    format!("=== END {name} ===")
}

/// Sections `name` in `text`: `(body, terminated)`.
fn find_sections(text: &str, name: &str) -> Vec<(String, bool)> {
    let (b, e) = (begin(name), end(name));
    let mut found = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    // A marker may follow output that lacked a final newline (`data=== END x ===`).
    for line in text.lines() {
        let t = line.trim_end();
        if t.ends_with(&b) {
            if let Some(open) = cur.take() {
                found.push((open.join("\n"), false));
            }
            cur = Some(Vec::new());
        } else if let Some(before) = t.strip_suffix(&e) {
            if let Some(mut open) = cur.take() {
                if !before.trim().is_empty() {
                    open.push(before);
                }
                found.push((open.join("\n"), true));
            }
        } else if let Some(open) = cur.as_mut() {
            open.push(line);
        }
    }
    if let Some(open) = cur {
        found.push((open.join("\n"), false));
    }
    found
}

impl VmOutput {
    /// The console text between the scenario start marker and the exit marker
    /// (boot log and `/init`'s [`DMESG_SECTION`] excluded).
    pub fn scenario_output(&self) -> &str {
        let c = &self.console;
        let s = c
            .find(SCENARIO_START_MARKER)
            .map(|i| i + SCENARIO_START_MARKER.len())
            .unwrap_or(0);
        let mut e = c
            .rfind(EXIT_MARKER_PREFIX)
            .filter(|&e| e >= s)
            .unwrap_or(c.len());
        if let Some(d) = c[s..e].rfind(&begin(DMESG_SECTION)) {
            e = s + d;
        }
        c[s..e].trim_matches('\n')
    }

    /// The lines the scenario printed between `=== BEGIN <name> ===` and
    /// `=== END <name> ===` (each marker at the end of its line, normally alone
    /// on it), joined with `\n`.
    /// Errors, quoting the console tail, unless there is exactly one complete
    /// such section.
    pub fn section(&self, name: &str) -> Result<String> {
        let mut secs = find_sections(&self.console, name);
        match secs.len() {
            1 if secs[0].1 => Ok(secs.remove(0).0),
            1 => Err(self.error(&format!("section {name:?} has no `{}` line", end(name)))),
            0 => Err(self.error(&format!(
                "no section {name:?} (`{}` ... `{}`)",
                begin(name),
                end(name)
            ))),
            n => Err(self.error(&format!(
                "section {name:?} appears {n} times; use sections()"
            ))),
        }
    }

    /// Every complete section called `name`, in order.
    pub fn sections(&self, name: &str) -> Vec<String> {
        find_sections(&self.console, name)
            .into_iter()
            .filter(|(_, done)| *done)
            .map(|(s, _)| s)
            .collect()
    }

    /// [`Self::section`] parsed as JSON lines (blank lines skipped). A line
    /// that is not JSON is an error naming it.
    pub fn section_json(&self, name: &str) -> Result<Vec<serde_json::Value>> {
        let body = self.section(name)?;
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l.trim()).map_err(|e| {
                    self.error(&format!(
                        "section {name:?} line {}: not JSON ({e}): {l}",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    /// Ok if the scenario exited 0; otherwise an error carrying the console
    /// tail and, if printed, the end of the guest's `dmesg`.
    pub fn ensure_success(&self) -> Result<()> {
        if self.exit_code == 0 {
            return Ok(());
        }
        let what = if self.exit_code == crate::SETUP_FAILED_EXIT {
            format!("VM setup in /init failed (exit {})", self.exit_code)
        } else {
            format!("scenario exited with status {}", self.exit_code)
        };
        Err(self.error(&what))
    }

    /// An error for this run: `msg`, the last [`FAILURE_TAIL_LINES`] console
    /// lines (without the [`DMESG_SECTION`]) and the last lines of that section.
    pub fn error(&self, msg: &str) -> anyhow::Error {
        let mut without_dmesg = String::new();
        let mut in_dmesg = false;
        for line in self.console.lines() {
            match line.trim() {
                t if t == begin(DMESG_SECTION) => in_dmesg = true,
                t if t == end(DMESG_SECTION) => in_dmesg = false,
                _ if !in_dmesg => {
                    without_dmesg.push_str(line);
                    without_dmesg.push('\n');
                }
                _ => {}
            }
        }
        let mut s = format!(
            "{msg} [VM {}]\n--- last {FAILURE_TAIL_LINES} console lines ---\n{}",
            self.kernel,
            last_lines(&without_dmesg, FAILURE_TAIL_LINES)
        );
        if let Some(d) = self.sections(DMESG_SECTION).last() {
            s.push_str(&format!(
                "\n--- guest dmesg (last 30 lines) ---\n{}",
                last_lines(d, 30)
            ));
        }
        anyhow!(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(console: &str) -> VmOutput {
        VmOutput {
            kernel: "test".into(),
            console: console.into(),
            exit_code: find_exit_code(console).unwrap_or(-1),
            boot_time: None,
            total_time: Duration::ZERO,
        }
    }

    #[test]
    fn sections_and_exit() {
        let o = out(
            "boot\n=== QEMU-VM SCENARIO START ===\nx\n=== BEGIN a ===\n{\"k\":1}\n\n{\"k\":2}\n=== END a ===\n\
                     === BEGIN b ===\nb1=== END b ===\n=== BEGIN b ===\nb2\n=== END b ===\n=== BEGIN c ===\nhalf\n\n=== QEMU-VM EXIT 3 ===\n",
        );
        assert_eq!(o.exit_code, 3);
        assert_eq!(o.section("a").unwrap(), "{\"k\":1}\n\n{\"k\":2}");
        assert_eq!(o.section_json("a").unwrap().len(), 2);
        assert!(o.section("b").is_err());
        assert_eq!(o.sections("b"), vec!["b1", "b2"]);
        assert!(o.section("c").unwrap_err().to_string().contains("has no"));
        assert!(o.section("zz").is_err());
        assert!(
            o.ensure_success()
                .unwrap_err()
                .to_string()
                .contains("status 3")
        );
        assert!(o.scenario_output().starts_with("x\n"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(
            clean_console("a\r\n\x1b[2J\x1b[01;01Hb\x1bc\tc\n"),
            "a\nb\tc\n"
        );
    }
}
