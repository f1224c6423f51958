//! Times as `journalctl --since/--until` accepts them (systemd.time(7)),
//! and the window they make.
//!
//! - `now`, `today`, `yesterday`, `tomorrow` (the last three at 00:00:00);
//! - `2026-04-10 15:52:46`, `2026-04-10 15:52`, `2026-04-10` (00:00:00),
//!   `26-04-10 ...` (two-digit year), `15:52:46` and `15:52` (today), with
//!   an optional fraction of a second, `T` instead of the space, a leading
//!   weekday (`Fri 2026-04-10 15:52:46`, checked) and a trailing ` UTC` or
//!   `Z` (otherwise the time is local);
//! - RFC 3339 (`2026-04-10T06:52:46.130211Z`, the events' own `ts`);
//! - `@1775803966` (seconds since the epoch, fractions allowed);
//! - a span before or after now: `-1h`, `+30min`, `2h ago`, `1h 30min ago`,
//!   `5min left` (systemd's units: `s`, `min`, `h`, `d`, `w`, `M`, `y`, ...,
//!   parsed by humantime, which follows systemd.time).
use anyhow::{Context, Result, anyhow, bail};
use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
    Utc,
};

/// A time range; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// The window of `--since`/`--until`, read relative to `now` in `now`'s
    /// time zone. A start after `now`, or after the end, is an error: no
    /// journal can hold anything in it.
    pub fn parse<Tz: TimeZone>(
        since: Option<&str>,
        until: Option<&str>,
        now: &DateTime<Tz>,
    ) -> Result<Window> {
        let since = since
            .map(|s| parse(s, now).with_context(|| format!("--since {s:?}")))
            .transpose()?;
        let until = until
            .map(|s| parse(s, now).with_context(|| format!("--until {s:?}")))
            .transpose()?;
        let now_utc = now.with_timezone(&Utc);
        if let Some(s) = since
            && s > now_utc
        {
            bail!(
                "--since {} is in the future (it is now {}): no journal holds anything after it",
                show(s),
                show(now_utc)
            );
        }
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            bail!(
                "--since {} is after --until {}: the window is empty",
                show(s),
                show(u)
            );
        }
        Ok(Window { since, until })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

fn show(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

const EXAMPLES: &str =
    "e.g. \"2026-04-10 15:52:46\", \"15:52\", \"yesterday\", \"-1h\", \"2h ago\", \"@1775803966\"";

/// One time specification, relative to `now` and in its time zone unless
/// it says UTC. A leap second (`:60`) is the second after it, as systemd
/// reads it.
pub fn parse<Tz: TimeZone>(spec: &str, now: &DateTime<Tz>) -> Result<DateTime<Utc>> {
    read(spec, now).map(no_leap)
}

/// A leap second, which chrono keeps as second 59 with more than a second
/// of nanoseconds, as the second after it: one time has one spelling, and
/// sorts among the journal's times by its value (`05:52:60.5` sorted
/// before `05:53:00.1`, and `@SECONDS` could not say it; found by the
/// fuzz target).
fn no_leap(t: DateTime<Utc>) -> DateTime<Utc> {
    let n = t.nanosecond();
    if n < 1_000_000_000 {
        return t;
    }
    t.with_nanosecond(n - 1_000_000_000)
        .and_then(|t| t.checked_add_signed(chrono::Duration::seconds(1)))
        .unwrap_or(t)
}

fn read<Tz: TimeZone>(spec: &str, now: &DateTime<Tz>) -> Result<DateTime<Utc>> {
    let s = spec.trim();
    if s.is_empty() {
        bail!("an empty time ({EXAMPLES})");
    }
    let now_utc = now.with_timezone(&Utc);
    let midnight = |days: i64| -> Result<DateTime<Utc>> {
        let day = now.date_naive();
        let day = if days >= 0 {
            day.checked_add_days(Days::new(days as u64))
        } else {
            day.checked_sub_days(Days::new(days.unsigned_abs()))
        }
        .ok_or_else(|| anyhow!("out of range"))?;
        local(&now.timezone(), day.and_time(NaiveTime::MIN))
    };
    match s {
        "now" => return Ok(now_utc),
        "today" => return midnight(0),
        "yesterday" => return midnight(-1),
        "tomorrow" => return midnight(1),
        _ => {}
    }
    if let Some(span) = s.strip_prefix('-') {
        return shift(now_utc, span, -1);
    }
    if let Some(span) = s.strip_prefix('+') {
        return shift(now_utc, span, 1);
    }
    if let Some(span) = s.strip_suffix(" ago") {
        return shift(now_utc, span, -1);
    }
    if let Some(span) = s.strip_suffix(" left") {
        return shift(now_utc, span, 1);
    }
    if let Some(epoch) = s.strip_prefix('@') {
        return epoch_time(epoch);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (s, utc) = match s.strip_suffix(" UTC").or_else(|| s.strip_suffix('Z')) {
        Some(rest) => (rest.trim_end(), true),
        None => (s, false),
    };
    let (weekday, s) = split_weekday(s);
    let naive = calendar(s, now.date_naive())
        .ok_or_else(|| anyhow!("not a time journalctl accepts ({EXAMPLES})"))?;
    if let Some(w) = weekday
        && naive.weekday() != w
    {
        bail!("{} is a {}, not a {w}", naive.date(), naive.weekday());
    }
    if utc {
        Ok(Utc.from_utc_datetime(&naive))
    } else {
        local(&now.timezone(), naive)
    }
}

/// `now` moved by a systemd time span, `sign` -1 (before) or 1 (after).
fn shift(now: DateTime<Utc>, span: &str, sign: i32) -> Result<DateTime<Utc>> {
    let d = humantime::parse_duration(span.trim()).map_err(|e| {
        anyhow!("{span:?} is not a time span ({e}; e.g. \"1h\", \"30min\", \"2d\")")
    })?;
    let d = chrono::Duration::from_std(d).map_err(|_| anyhow!("the span {span:?} is too long"))?;
    let t = if sign < 0 {
        now.checked_sub_signed(d)
    } else {
        now.checked_add_signed(d)
    };
    t.ok_or_else(|| anyhow!("the span {span:?} is too long"))
}

/// `@SECONDS[.FRACTION]`, before the epoch with a `-`: the fraction has
/// the sign of the whole (`@-1.25` is 1.25 s before the epoch, not 0.75).
fn epoch_time(s: &str) -> Result<DateTime<Utc>> {
    let bad = || anyhow!("@{s} is not a number of seconds since the epoch");
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let before = secs.starts_with('-');
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let t = DateTime::from_timestamp(secs, 0).ok_or_else(bad)?;
    let frac = chrono::Duration::nanoseconds(if before { -nanos } else { nanos });
    t.checked_add_signed(frac).ok_or_else(bad)
}

/// A leading English weekday name ("Fri", "Friday"), as journalctl allows.
fn split_weekday(s: &str) -> (Option<chrono::Weekday>, &str) {
    if let Some((first, rest)) = s.split_once(' ')
        && let Ok(w) = first.parse::<chrono::Weekday>()
    {
        return (Some(w), rest.trim_start());
    }
    (None, s)
}

/// The calendar forms: date and time, date alone (midnight), or a time of
/// day (on `today`).
fn calendar(s: &str, today: NaiveDate) -> Option<NaiveDateTime> {
    let s = s.replacen('T', " ", 1);
    // "26-04-10": a two-digit year (%Y would read it as the year 26).
    let short_year = s.as_bytes().get(2) == Some(&b'-');
    let (with_time, date_only): (&[&str], &str) = if short_year {
        (&["%y-%m-%d %H:%M:%S%.f", "%y-%m-%d %H:%M"], "%y-%m-%d")
    } else {
        (&["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"], "%Y-%m-%d")
    };
    for fmt in with_time {
        if let Ok(t) = NaiveDateTime::parse_from_str(&s, fmt) {
            return Some(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(&s, date_only) {
        return Some(d.and_time(NaiveTime::MIN));
    }
    for fmt in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(&s, fmt) {
            return Some(today.and_time(t));
        }
    }
    None
}

/// A wall-clock time in `tz`: the earlier one when the clocks went back,
/// an error when it does not exist (the clocks went forward).
fn local<Tz: TimeZone>(tz: &Tz, t: NaiveDateTime) -> Result<DateTime<Utc>> {
    match tz.from_local_datetime(&t) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => bail!("{t} does not exist in the local time zone"),
    }
}

#[cfg(test)]
mod tests {
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
        // A leap second is the second after it (found by the fuzz target).
        assert_eq!(p("2026-04-10T06:52:60.5Z"), utc("2026-04-10T06:53:00.5Z"));
        assert_eq!(p("2026-04-10 06:52:60 UTC"), utc("2026-04-10T06:53:00Z"));
        // The fraction has the sign of the whole (found by the fuzz target).
        assert_eq!(p("@-1.25"), utc("1969-12-31T23:59:58.75Z"));
        assert_eq!(p("@-0.5"), utc("1969-12-31T23:59:59.5Z"));
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
}
