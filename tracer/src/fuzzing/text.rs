//! The command line's texts: `--expect` expectations (`guard::expect`),
//! `--since`/`--until` times (`when`) and `--iface [NETNS:]IFACE` specs
//! (`iface`). Each prints back to a text that parses to the same value.
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

use crate::{
    escape::escape_str,
    event::{Route, Rule},
    guard::expect::Expectation,
    iface::IfaceSpec,
    netlink::names::TableNames,
    when::{self, Window},
};

/// rt_tables as a router with a tailnet has it.
const RT_TABLES: &str = "255 local\n254 main\n253 default\n52 tailscale\n0x64 vpn # hex\n";

pub fn expect(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut names = TableNames::default();
    names.merge(RT_TABLES);
    let Ok(e) = Expectation::parse(text, &names) else {
        return;
    };
    let shown = e.to_string();
    // Names are shown escaped for the terminal (`escape`: `\`, controls,
    // bidirectional marks); only an expectation without such a name
    // prints as text that reads back to it.
    let names_shown_as_they_are = match &e {
        Expectation::Route(r) => [&r.dev, &None, &None],
        Expectation::Rule(r) => [&None, &r.iif, &r.oif],
    }
    .into_iter()
    .flatten()
    .all(|n| escape_str(n) == *n);
    if names_shown_as_they_are {
        let again = Expectation::parse(&shown, &names).unwrap_or_else(|err| {
            panic!("{text:?} prints as {shown:?}, which does not parse: {err:#}")
        });
        assert_eq!(again, e, "{text:?} prints as {shown:?}");
        assert_eq!(again.to_string(), shown);
    }
    // What the expectation describes meets it.
    match &e {
        Expectation::Route(r) => {
            let route = r.route();
            assert!(e.matches_route(&route), "{text:?} misses {route:?}");
            assert!(!e.matches_rule(&Rule::default()));
        }
        Expectation::Rule(r) => {
            let rule = r.rule();
            assert!(e.matches_rule(&rule), "{text:?} misses {rule:?}");
            assert!(!e.matches_route(&Route::default()));
        }
    }
}

/// 2026-04-10 21:42:34 in the zone `offset` seconds east of UTC.
fn now(offset: i32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(offset)
        .expect("less than a day")
        .with_ymd_and_hms(2026, 4, 10, 21, 42, 34)
        .single()
        .expect("a fixed offset has every time")
}

/// Nanoseconds since the epoch, whatever the year.
fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

/// `@SECONDS[.FRACTION]` read independently of `when`: a sign, whole
/// seconds, at most nine digits of a fraction.
fn epoch_nanos(s: &str) -> Option<i128> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 9 {
        return None;
    }
    let n =
        whole.parse::<i128>().ok()? * 1_000_000_000 + format!("{frac:0<9}").parse::<i128>().ok()?;
    Some(if neg { -n } else { n })
}

/// `t` as `@SECONDS.NANOS`, before the epoch with a minus sign.
fn epoch_spec(t: DateTime<Utc>) -> String {
    let n = nanos(t);
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    format!("@{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

/// The first byte picks the time zone (in quarter hours from UTC), the
/// rest is the time.
pub fn time(data: &[u8]) {
    let Some((&zone, rest)) = data.split_first() else {
        return;
    };
    let Ok(spec) = std::str::from_utf8(rest) else {
        return;
    };
    let now = now((i32::from(zone) - 128) % 96 * 900);
    let Ok(t) = when::parse(spec, &now) else {
        return;
    };
    if let Some(epoch) = spec.trim().strip_prefix('@') {
        let want = epoch_nanos(epoch)
            .unwrap_or_else(|| panic!("{spec:?} was read as {t}, but it is not a number"));
        assert_eq!(nanos(t), want, "{spec:?}");
    }
    let p =
        |s: &str| when::parse(s, &now).unwrap_or_else(|e| panic!("{spec:?} is {t}; {s:?}: {e:#}"));
    assert_eq!(p(&epoch_spec(t)), t, "{spec:?} as {}", epoch_spec(t));
    // Both forms have four-digit years.
    if (0..=9999).contains(&chrono::Datelike::year(&t)) {
        let rfc = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        assert_eq!(p(&rfc), t, "{spec:?} as {rfc}");
        let utc = t.format("%Y-%m-%d %H:%M:%S%.f UTC").to_string();
        assert_eq!(p(&utc), t, "{spec:?} as {utc}");
    }
    let window = Window::parse(Some(spec), Some(spec), &now);
    if t <= now.with_timezone(&Utc) {
        let w = window.unwrap_or_else(|e| panic!("{spec:?}: {e:#}"));
        assert!(w.contains(t));
    } else {
        assert!(window.is_err(), "{spec:?} is after now");
    }
}

/// The kernel's `dev_valid_name`: 1-15 bytes, not `.` or `..`, no `/`,
/// `:`, NUL or white space.
fn kernel_accepts(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', '\0'])
        && !name.contains(|c: char| c.is_ascii_whitespace())
}

pub fn iface(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = IfaceSpec::from_str(s) else {
        return;
    };
    assert!(kernel_accepts(&spec.name), "{s:?} names {:?}", spec.name);
    assert!(spec.netns.as_ref().is_none_or(|n| !n.is_empty()));
    let shown = spec.to_string();
    assert_eq!(shown, s);
    assert_eq!(IfaceSpec::from_str(&shown), Ok(spec));
}
