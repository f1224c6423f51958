//! The release artefacts of `cargo xtask dist` (target/dist/), which
//! `cargo xtask test` builds before this target runs:
//! - each static binary is what `file` calls a static executable of its
//!   architecture, and the x86-64 one runs with an empty environment;
//! - both .debs pass lintian without errors;
//! - the amd64 .deb installs with `dpkg -i`, `tracer doctor` runs from
//!   /usr/bin, `man tracer-watch` renders, the unit passes
//!   `systemd-analyze verify`, and `dpkg -r`
//!   leaves none of its files behind.
//!
//! Needs root (dpkg). Runs alone (it installs a system package).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dist() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dist");
    assert!(
        d.is_dir(),
        "{} does not exist: run `cargo xtask dist` (`cargo xtask test` does)",
        d.display()
    );
    d
}

fn version() -> String {
    // The workspace version, shared by every package.
    env!("CARGO_PKG_VERSION").to_string()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn static_binaries() {
    for (name, arch) in [
        ("tracer-x86_64-linux", "x86-64"),
        ("tracer-aarch64-linux", "ARM aarch64"),
    ] {
        let bin = dist().join(name);
        let file = text(&run(Command::new("file").arg(&bin)));
        eprintln!("{}", file.trim());
        assert!(file.contains("ELF 64-bit LSB"), "{file}");
        assert!(file.contains(arch), "{name} is not {arch}: {file}");
        assert!(
            file.contains("statically linked") || file.contains("static-pie linked"),
            "{name} is not static: {file}"
        );
        assert!(!file.contains("interpreter"), "{name}: {file}");
    }
    let out = run(Command::new(dist().join("tracer-x86_64-linux"))
        .arg("--version")
        .env_clear());
    assert_eq!(text(&out).trim(), format!("tracer {}", version()));
}

#[test]
fn debs_pass_lintian_and_install_cleanly() {
    let v = version();
    for arch in ["amd64", "arm64"] {
        let deb = dist().join(format!("tracer_{v}_{arch}.deb"));
        assert!(deb.is_file(), "{} missing", deb.display());
        let out = Command::new("lintian")
            .args(["--tag-display-limit", "0"])
            .arg(&deb)
            .output()
            .expect("lintian (cargo xtask setup installs it)");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("lintian {arch}:\n{report}");
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian errors for {arch}:\n{report}");
    }
    install_use_remove(&dist().join(format!("tracer_{v}_amd64.deb")));
}

fn install_use_remove(deb: &Path) {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "tracer"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "a tracer package is already installed here; remove it (dpkg -r tracer) before this test"
    );
    assert!(
        !Path::new("/usr/bin/tracer").exists(),
        "/usr/bin/tracer exists outside the package; move it away before this test"
    );
    run(Command::new("dpkg").arg("-i").arg(deb));
    let files: Vec<String> = text(&run(Command::new("dpkg").args(["-L", "tracer"])))
        .lines()
        .map(str::to_string)
        .collect();
    let remove = RemoveOnDrop;
    for f in [
        "/usr/bin/tracer",
        "/usr/share/man/man1/tracer.1.gz",
        "/usr/share/man/man1/tracer-watch.1.gz",
        "/usr/share/man/man1/tracer-doctor.1.gz",
        "/usr/share/bash-completion/completions/tracer",
        "/usr/share/zsh/vendor-completions/_tracer",
        "/usr/share/fish/vendor_completions.d/tracer.fish",
        "/lib/systemd/system/tracer-record.service",
        "/usr/share/doc/tracer/copyright",
        "/usr/share/doc/tracer/README.md.gz",
    ] {
        assert!(
            files.iter().any(|l| l == f),
            "{f} not in the package: {files:?}"
        );
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    // One man page per visible subcommand.
    for sub in [
        "watch", "record", "guard", "explain", "state", "doctor", "report",
    ] {
        let page = format!("/usr/share/man/man1/tracer-{sub}.1.gz");
        assert!(files.contains(&page), "{page} missing");
    }

    let doctor = text(&run(Command::new("/usr/bin/tracer").arg("doctor")));
    assert!(doctor.contains("arch       x86_64"), "{doctor}");
    assert!(doctor.contains("route4_del"), "{doctor}");

    let man = text(&run(Command::new("man")
        .args(["-P", "cat", "tracer-watch"])
        .env("MANWIDTH", "80")));
    assert!(man.contains("tracer-watch"), "{man}");
    assert!(
        man.contains("--attach"),
        "man tracer-watch lacks --attach:\n{man}"
    );

    let unit = std::fs::read_to_string("/lib/systemd/system/tracer-record.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/tracer record"), "{unit}");
    let out = Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/tracer-record.service"])
        .output()
        .expect("systemd-analyze (package systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("tracer-record.service:"),
        "systemd-analyze verify: {err}"
    );

    drop(remove);
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "tracer"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        !status.contains("installed") || status.contains("not-installed"),
        "after dpkg -r: {status}"
    );
    let left: Vec<&String> = files
        .iter()
        .filter(|f| {
            let p = Path::new(f.as_str());
            // Directories shared with other packages stay.
            p.exists() && !p.is_dir()
        })
        .collect();
    assert!(left.is_empty(), "dpkg -r left files behind: {left:?}");
}

/// `dpkg -r tracer`, also when an assertion failed.
struct RemoveOnDrop;
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let out = Command::new("dpkg").args(["-r", "tracer"]).output();
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!(
                "dpkg -r tracer failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
