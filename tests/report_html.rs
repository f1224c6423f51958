//! `tracer report --format html` in a real browser: Debian's Chromium
//! (`cargo xtask setup` installs it), headless. Each page is rendered to a
//! PNG under target/report-html/ (a test artefact, not in the repository),
//! and its DOM is dumped after loading: the page must load with no console
//! message at all (no script error, no Content-Security-Policy violation,
//! which is what any fetch from outside would cause), and its SVG must hold
//! the expected rows. A page with a script error and an outside image shows
//! that the check sees both. No Chromium is a failure, not a skip.
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tracer/tests/fixtures")
        .join(name)
}

/// target/report-html/, where the pages and screenshots are kept.
fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
    let d = target.join("report-html");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "chromium not found in PATH: this test renders the HTML report in Debian's headless \
             Chromium; `cargo xtask setup` installs it (or: apt-get install -y chromium)"
        )
    })
}

/// `tracer report --utc --format html ARGS`, written to NAME.html.
fn page(name: &str, args: &[&str]) -> PathBuf {
    let out = Command::new(common::tracer_bin())
        .args(["report", "--utc", "--format", "html"])
        .args(args)
        .output()
        .expect("run tracer report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = artefacts().join(format!("{name}.html"));
    std::fs::write(&f, out.stdout).unwrap();
    f
}

/// What Chromium made of a page.
struct Rendered {
    dom: String,
    /// Console messages (script errors, CSP violations, console.*).
    console: Vec<String>,
    png: PathBuf,
    png_bytes: usize,
}

fn chromium_run(page: &Path, extra: &[String]) -> (String, String) {
    let profile = std::env::temp_dir().join(format!(
        "tracer-report-html-{}-{}",
        std::process::id(),
        page.file_stem().unwrap().to_string_lossy()
    ));
    let out = Command::new("timeout")
        .arg("180")
        .arg(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{err}",
        out.status
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), err)
}

fn render(page: &Path, height: u32) -> Rendered {
    let png = page.with_extension("png");
    let _ = std::fs::remove_file(&png);
    let (_, shot_err) = chromium_run(
        page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size=1280,{height}"),
        ],
    );
    let (dom, dom_err) = chromium_run(page, &["--dump-dom".to_string()]);
    let console = shot_err
        .lines()
        .chain(dom_err.lines())
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    let bytes =
        std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    Rendered {
        dom,
        console,
        png_bytes: bytes.len(),
        png,
    }
}

#[test]
fn the_check_sees_script_errors_and_outside_fetches() {
    let f = artefacts().join("control.html");
    std::fs::write(
        &f,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>\
         <img src=\"http://example.invalid/x.png\"><script>nosuchfn();</script>\
         <p>control</p></body></html>",
    )
    .unwrap();
    let r = render(&f, 400);
    assert!(
        r.console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{:?}",
        r.console
    );
    assert!(
        r.console
            .iter()
            .any(|l| l.contains("nosuchfn is not defined")),
        "{:?}",
        r.console
    );
}

#[test]
fn the_lab_recording_renders_with_its_rows() {
    let f = page(
        "lab-recorded",
        &[fixture("lab-recorded.journal").to_str().unwrap()],
    );
    let r = render(&f, 1600);
    // The picture and tables are there: not a blank page.
    assert!(r.png_bytes > 50_000, "{} is nearly empty", r.png.display());
    assert!(
        r.console.is_empty(),
        "console messages:\n{}",
        r.console.join("\n")
    );
    let rows: Vec<&str> = r.dom.split("<g class=\"row\"").skip(1).collect();
    assert_eq!(rows.len(), 5, "{}", r.dom);
    let labels = [
        "inet throw 192.168.1.0/24 table 52 proto boot",
        "rule inet pref 5210 ",
        "rule inet pref 5230 ",
        "rule inet pref 5250 ",
        "rule inet pref 5270 lookup 52",
    ];
    for (row, label) in rows.iter().zip(labels) {
        assert!(
            row.contains(&format!("text-anchor=\"end\">{label}")),
            "{label}: {row}"
        );
    }
    assert_eq!(r.dom.matches("<g class=\"loop\">").count(), 1);
    assert!(r.dom.contains("<h2>Root cause candidates</h2>"));
    eprintln!("screenshot: {}", r.png.display());
}

/// A journal of `n` routes added and removed, one a millisecond.
fn flapping_journal(n: usize) -> PathBuf {
    let mut text = String::from(
        "{\"ts\":\"2026-11-24T10:00:00Z\",\"kind\":\"ready\",\"source\":\"tracepoint\",\"hooks\":{},\"functions\":{},\"kernel\":\"6.18\",\"version\":\"0.1.0\",\"pid\":7,\"namespaces\":[{\"inode\":1,\"name\":\"r\"}]}\n",
    );
    for i in 0..n {
        for (k, kind) in ["route_add", "route_del"].iter().enumerate() {
            let ms = i * 2 + k;
            text += &format!(
                "{{\"ts\":\"2026-11-24T10:00:{:02}.{:03}Z\",\"kind\":\"{kind}\",\"source\":\"tracepoint\",\"process\":{{\"pid\":{},\"tid\":1,\"comm\":\"churn\",\"ppid\":1,\"parent_comm\":\"init\",\"exe\":null,\"uid\":0,\"cgroup\":\"/\",\"unit\":null}},\"netns\":{{\"inode\":1,\"name\":\"r\"}},\"route\":{{\"family\":\"inet\",\"table\":100,\"table_name\":null,\"type\":\"unicast\",\"dst\":\"10.{}.{}.0/24\",\"gateway\":null,\"dev\":null,\"ifindex\":null,\"metric\":null,\"protocol\":\"boot\",\"scope\":\"global\"}},\"result\":\"ok\",\"cause\":null}}\n",
                1 + ms / 1000,
                ms % 1000,
                100 + k,
                i / 256,
                i % 256
            );
        }
    }
    let f = artefacts().join("flapping.jsonl");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn thousands_of_changes_stay_readable() {
    let j = flapping_journal(3000);
    let f = page("thousands", &[j.to_str().unwrap()]);
    let r = render(&f, 1800);
    // The picture and tables are there: not a blank page.
    assert!(r.png_bytes > 50_000, "{} is nearly empty", r.png.display());
    assert!(
        r.console.is_empty(),
        "console messages:\n{}",
        r.console.join("\n")
    );
    assert_eq!(r.dom.matches("<g class=\"row\"").count(), 60, "rows drawn");
    assert!(
        r.dom
            .contains("and 2940 more rules and routes (5880 changes), not drawn"),
        "{}",
        &r.dom[..r.dom.len().min(4000)]
    );
    // The lists are capped too.
    assert!(r.dom.contains("... and 2980 more candidates"), "candidates");
}
