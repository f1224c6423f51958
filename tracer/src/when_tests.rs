use chrono::{DateTime, FixedOffset, TimeZone, Utc};

use super::{Window, parse};

/// 2026-04-10 21:42:34 in Japan (12:42:34 UTC): the incident's fix.
fn now() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(9 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 4, 10, 21, 42, 34)
        .unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn p(s: &str) -> DateTime<Utc> {
    parse(s, &now()).unwrap_or_else(|e| panic!("{s:?}: {e:#}"))
}

#[test]
fn absolute_times_are_local() {
    assert_eq!(p("2026-04-10 15:52:46"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("2026-04-10T15:52:46"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(
        p("2026-04-10 15:52:46.130211"),
        utc("2026-04-10T06:52:46.130211Z")
    );
    assert_eq!(p("2026-04-10 15:52"), utc("2026-04-10T06:52:00Z"));
    assert_eq!(p("26-04-10 15:52:46"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("2026-04-10"), utc("2026-04-09T15:00:00Z"));
    assert_eq!(p("Fri 2026-04-10 15:52:46"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("Friday 2026-04-10 15:52:46"), utc("2026-04-10T06:52:46Z"));
}

#[test]
fn utc_and_rfc3339_and_epoch() {
    assert_eq!(p("2026-04-10 06:52:46 UTC"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("2026-04-10 06:52:46Z"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(
        p("2026-04-10T06:52:46.130211Z"),
        utc("2026-04-10T06:52:46.130211Z")
    );
    assert_eq!(p("2026-04-10T15:52:46+09:00"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("@1775803966"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("@1775803966.5"), utc("2026-04-10T06:52:46.5Z"));
}

#[test]
fn times_of_day_are_today() {
    assert_eq!(p("15:52"), utc("2026-04-10T06:52:00Z"));
    assert_eq!(p("15:52:46"), utc("2026-04-10T06:52:46Z"));
    assert_eq!(p("15:52 UTC"), utc("2026-04-10T15:52:00Z"));
}

#[test]
fn words_are_midnights_and_now() {
    assert_eq!(p("now"), utc("2026-04-10T12:42:34Z"));
    assert_eq!(p("today"), utc("2026-04-09T15:00:00Z"));
    assert_eq!(p("yesterday"), utc("2026-04-08T15:00:00Z"));
    assert_eq!(p("tomorrow"), utc("2026-04-10T15:00:00Z"));
}

#[test]
fn spans_before_and_after_now() {
    assert_eq!(p("-1h"), utc("2026-04-10T11:42:34Z"));
    assert_eq!(p("+1h"), utc("2026-04-10T13:42:34Z"));
    assert_eq!(p("2h ago"), utc("2026-04-10T10:42:34Z"));
    assert_eq!(p("2 hours ago"), utc("2026-04-10T10:42:34Z"));
    assert_eq!(p("1h 30min ago"), utc("2026-04-10T11:12:34Z"));
    assert_eq!(p("-30s"), utc("2026-04-10T12:42:04Z"));
    assert_eq!(p("5min left"), utc("2026-04-10T12:47:34Z"));
    assert_eq!(p("-1d"), utc("2026-04-09T12:42:34Z"));
}

#[test]
fn bad_times_say_what_is_accepted() {
    for (spec, want) in [
        ("", "an empty time"),
        ("garbage", "not a time journalctl accepts"),
        ("2026-13-40 10:00", "not a time journalctl accepts"),
        ("25:00", "not a time journalctl accepts"),
        ("-1 fortnight", "not a time span"),
        ("x ago", "not a time span"),
        ("@12x", "not a number of seconds"),
        ("Mon 2026-04-10 15:52:46", "2026-04-10 is a Fri, not a Mon"),
        ("-99999999999y", "too long"),
    ] {
        let e = format!("{:#}", parse(spec, &now()).unwrap_err());
        assert!(e.contains(want), "{spec:?}: {e}");
    }
}

#[test]
fn window_rejects_a_future_start_and_an_inverted_range() {
    let w = Window::parse(Some("15:00"), Some("16:00"), &now()).unwrap();
    assert_eq!(w.since, Some(utc("2026-04-10T06:00:00Z")));
    assert!(w.contains(utc("2026-04-10T06:52:46Z")));
    assert!(w.contains(utc("2026-04-10T07:00:00Z")));
    assert!(!w.contains(utc("2026-04-10T07:00:00.000001Z")));
    assert!(!w.contains(utc("2026-04-10T05:59:59Z")));
    assert!(Window::default().contains(utc("1970-01-01T00:00:00Z")));

    let e = format!(
        "{:#}",
        Window::parse(Some("tomorrow"), None, &now()).unwrap_err()
    );
    assert_eq!(
        e,
        "--since 2026-04-10 15:00:00 UTC is in the future (it is now 2026-04-10 12:42:34 UTC): \
         no journal holds anything after it"
    );
    let e = format!(
        "{:#}",
        Window::parse(Some("16:00"), Some("15:00"), &now()).unwrap_err()
    );
    assert!(e.contains("is after --until"), "{e}");
    let e = format!(
        "{:#}",
        Window::parse(None, Some("soon"), &now()).unwrap_err()
    );
    assert!(e.starts_with("--until \"soon\": not a time"), "{e}");
    // An end in the future is fine: the journal may still be written.
    assert!(Window::parse(None, Some("+1h"), &now()).is_ok());
}
