//! `cargo xtask dist`: the release artefacts, in `target/dist/`:
//! - `tracer-x86_64-linux`, `tracer-aarch64-linux`: static (glibc)
//!   executables, stripped, that run on any Linux of that architecture;
//! - `tracer_<version>_amd64.deb`, `tracer_<version>_arm64.deb`: the binary
//!   as /usr/bin/tracer, man pages and bash/zsh/fish completions generated
//!   from the CLI (`tracer generate-docs`), the systemd unit, and
//!   /usr/share/doc/tracer (README, copyright, changelog). Built with
//!   dpkg-deb from a staged tree.

use crate::{process, setup, workspace};
use anyhow::{Context, Result, bail};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One architecture's artefacts.
struct Target {
    /// Rust target triple.
    triple: &'static str,
    /// `tracer-<name>-linux`.
    name: &'static str,
    /// Debian architecture.
    debian: &'static str,
    /// binutils' strip for it.
    strip: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        triple: "x86_64-unknown-linux-gnu",
        name: "x86_64",
        debian: "amd64",
        strip: "strip",
    },
    Target {
        triple: "aarch64-unknown-linux-gnu",
        name: "aarch64",
        debian: "arm64",
        strip: "aarch64-linux-gnu-strip",
    },
];

const STATIC: &str = "-C target-feature=+crt-static";

pub fn run() -> Result<()> {
    setup::run()?;
    build()
}

/// Builds every artefact (the toolchain must be set up).
pub fn build() -> Result<()> {
    let meta = workspace::metadata()?;
    let version = meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "tracer")
        .map(|p| p.version.to_string())
        .context("package tracer not in the workspace")?;
    let target_dir = meta.target_directory.as_std_path().to_path_buf();
    let dist = target_dir.join("dist");
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("clearing {}", dist.display()))?;
    }
    fs::create_dir_all(&dist)?;

    for t in TARGETS {
        let mut cmd = workspace::cargo();
        cmd.args(["build", "--release", "--target", t.triple, "-p", "tracer"]);
        // With --target, RUSTFLAGS reach only the target's artefacts (not
        // build scripts or proc macros); aarch64 also gets it from
        // .cargo/config.toml. aya-build's eBPF build sets its own flags.
        cmd.env("RUSTFLAGS", STATIC);
        println!("dist: {}", process::display(&cmd));
        process::run_streamed(&format!("dist build ({})", t.triple), &mut cmd)?;
        let built = target_dir.join(t.triple).join("release").join("tracer");
        let out = dist.join(format!("tracer-{}-linux", t.name));
        fs::copy(&built, &out).with_context(|| format!("copying {}", built.display()))?;
        let mut strip = Command::new(t.strip);
        strip.arg(&out);
        process::run_streamed("dist strip", &mut strip)?;
        println!("dist: {}", out.display());
    }

    // Man pages and completions, from the CLI definition (host binary).
    let gen_dir = target_dir.join("dist-gen");
    if gen_dir.exists() {
        fs::remove_dir_all(&gen_dir)?;
    }
    let mut generate = Command::new(dist.join("tracer-x86_64-linux"));
    generate.arg("generate-docs").arg(&gen_dir);
    process::run_streamed("dist generate-docs", &mut generate)?;

    for t in TARGETS {
        let deb = package(t, &version, &dist, &gen_dir, &target_dir)?;
        println!("dist: {}", deb.display());
    }
    println!("dist: done, artefacts in {}", dist.display());
    Ok(())
}

/// Stages and builds one .deb; returns its path.
fn package(
    t: &Target,
    version: &str,
    dist: &Path,
    gen_dir: &Path,
    target: &Path,
) -> Result<PathBuf> {
    let root = workspace::root();
    let stage = target.join(format!("deb-{}", t.debian));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let put = |rel: &str, data: &[u8], mode: u32| -> Result<()> {
        let p = stage.join(rel);
        fs::create_dir_all(p.parent().unwrap())?;
        fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put(
        "usr/bin/tracer",
        &fs::read(dist.join(format!("tracer-{}-linux", t.name)))?,
        0o755,
    )?;
    let mut pages: Vec<PathBuf> = fs::read_dir(gen_dir.join("man1"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    for page in pages {
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        put(
            &format!("usr/share/man/man1/{name}.gz"),
            &gzip(&fs::read(&page)?)?,
            0o644,
        )?;
    }
    let comp = gen_dir.join("completions");
    put(
        "usr/share/bash-completion/completions/tracer",
        &fs::read(comp.join("tracer.bash"))?,
        0o644,
    )?;
    put(
        "usr/share/zsh/vendor-completions/_tracer",
        &fs::read(comp.join("_tracer"))?,
        0o644,
    )?;
    put(
        "usr/share/fish/vendor_completions.d/tracer.fish",
        &fs::read(comp.join("tracer.fish"))?,
        0o644,
    )?;
    // The unit, pointing at the packaged binary.
    let unit = fs::read_to_string(root.join("dist/tracer-record.service"))?
        .replace("/usr/local/bin/tracer", "/usr/bin/tracer");
    put(
        "lib/systemd/system/tracer-record.service",
        unit.as_bytes(),
        0o644,
    )?;
    put(
        "usr/share/doc/tracer/README.md.gz",
        &gzip(&fs::read(root.join("README.md"))?)?,
        0o644,
    )?;
    put(
        "usr/share/doc/tracer/copyright",
        COPYRIGHT.as_bytes(),
        0o644,
    )?;
    put(
        "usr/share/lintian/overrides/tracer",
        LINTIAN_OVERRIDES.as_bytes(),
        0o644,
    )?;
    let changelog = format!(
        "tracer ({version}) unstable; urgency=medium\n\n  * Release {version}.\n\n -- {MAINTAINER}  {}\n",
        changelog_date()?
    );
    put(
        "usr/share/doc/tracer/changelog.gz",
        &gzip(changelog.as_bytes())?,
        0o644,
    )?;

    let installed_kib = du_kib(&stage)?;
    let control = format!(
        "Package: tracer\n\
         Version: {version}\n\
         Architecture: {}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\n\
         Section: net\n\
         Priority: optional\n\
         Homepage: https://github.com/tracer/tracer\n\
         Description: who changed the routing? eBPF tracer of rule and route changes\n \
         tracer reports every routing-rule and route change on a Linux machine,\n \
         live, with the process behind it (pid, parent, executable, uid,\n \
         systemd unit, network namespace), including routes the kernel removes\n \
         without a request. It records a journal (tracer-record.service), guards\n \
         expected routes, finds forwarding loops and explains them afterwards.\n",
        t.debian
    );
    put("DEBIAN/control", control.as_bytes(), 0o644)?;
    put("DEBIAN/md5sums", md5sums(&stage)?.as_bytes(), 0o644)?;
    for d in walk_dirs(&stage)? {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
    }

    let deb = dist.join(format!("tracer_{version}_{}.deb", t.debian));
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb);
    process::run_streamed("dist dpkg-deb", &mut cmd)?;
    Ok(deb)
}

/// The binary is static on purpose (one file that runs on any distribution,
/// the same as the one shipped alone); lintian takes a static-pie for a
/// shared library without dependencies.
const LINTIAN_OVERRIDES: &str = "\
# Static on purpose: the same single file as tracer-<arch>-linux, which
# runs on any Linux distribution of its architecture.
tracer: statically-linked-binary [usr/bin/tracer]
tracer: shared-library-lacks-prerequisites [usr/bin/tracer]
";

const MAINTAINER: &str = "tracer maintainers <tracer@example.org>";

const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tracer
Source: https://github.com/tracer/tracer

Files: *
Copyright: 2026 tracer contributors
License: MIT or Apache-2.0
 The userspace program is available under either the MIT license or the
 Apache License, Version 2.0, at your option. The embedded eBPF programs
 are licensed GPL (the kernel requires it for the helpers they use).
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in /usr/share/common-licenses/Apache-2.0.
 .
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the
 \"Software\"), to deal in the Software without restriction, including
 without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit
 persons to whom the Software is furnished to do so, subject to the
 following conditions: the above copyright notice and this permission
 notice shall be included in all copies or substantial portions of the
 Software. THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.
";

/// `gzip -9n`: maximum compression, no name or time stamp (reproducible).
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running gzip")?;
    child.stdin.take().unwrap().write_all(data)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed: {}", out.status);
    }
    Ok(out.stdout)
}

/// The changelog's date, in the format Debian's changelog wants (`date -R`).
fn changelog_date() -> Result<String> {
    let out = process::capture(Command::new("date").arg("-R"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Installed size in KiB (`du -sk`, DEBIAN/ excluded since it is not yet there).
fn du_kib(dir: &Path) -> Result<u64> {
    let out = process::capture(Command::new("du").arg("-sk").arg(dir))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("du -sk {}: {text}", dir.display()))
}

/// `DEBIAN/md5sums`: every file outside DEBIAN/, relative path.
fn md5sums(stage: &Path) -> Result<String> {
    let mut files = Vec::new();
    walk_files(stage, stage, &mut files)?;
    files.retain(|f| !f.starts_with("DEBIAN"));
    files.sort();
    let mut cmd = Command::new("md5sum");
    cmd.current_dir(stage).args(&files);
    let out = process::capture(&mut cmd)?;
    process::check_output("dist md5sums", &cmd, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn walk_files(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk_files(base, &p, out)?;
        } else {
            out.push(p.strip_prefix(base)?.to_path_buf());
        }
    }
    Ok(())
}

fn walk_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk_dirs(&p)?);
        }
    }
    Ok(out)
}
