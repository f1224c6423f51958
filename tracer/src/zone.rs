//! The zone text output shows times in: local time by default, UTC with
//! `--utc`, for every command alike (`watch`, `record`, `guard`, `report`,
//! `explain`, `state`). JSON is always UTC. A leaf: every layer may use it.
use chrono::{DateTime, FixedOffset, Local, Offset as _, SecondsFormat, TimeZone as _, Utc};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Zone {
    Utc,
    #[default]
    Local,
}

impl Zone {
    /// The zone a command's `--utc` flag asks for.
    pub fn from_utc_flag(utc: bool) -> Zone {
        if utc { Zone::Utc } else { Zone::Local }
    }

    /// The offset from UTC at moment `t`.
    pub fn offset(self, t: DateTime<Utc>) -> FixedOffset {
        match self {
            Zone::Utc => Utc.fix(),
            Zone::Local => Local.offset_from_utc_datetime(&t.naive_utc()).fix(),
        }
    }

    /// How times of moment `t` are labelled in this zone, in every
    /// command's text alike: "UTC" when the offset is 0 (`--utc`, or a
    /// local zone at UTC), else "UTC+09:00".
    pub fn label(self, t: DateTime<Utc>) -> String {
        let off = self.offset(t);
        if off.local_minus_utc() == 0 {
            "UTC".into()
        } else {
            format!("UTC{off}")
        }
    }

    /// An event's `ts` (RFC 3339, UTC) as a text line shows it: RFC 3339 in
    /// this zone, to the microsecond, `Z` when the offset is 0. Text that is
    /// not such a time (an edited journal's) is returned as it is, for the
    /// caller to escape.
    pub fn stamp(self, ts: &str) -> String {
        let Ok(t) = DateTime::parse_from_rfc3339(ts) else {
            return ts.to_string();
        };
        let t = t.with_timezone(&Utc);
        let off = self.offset(t);
        t.with_timezone(&off)
            .to_rfc3339_opts(SecondsFormat::Micros, off.local_minus_utc() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_keep_the_events_own_form() {
        let ts = "2026-04-10T06:52:46.130211Z";
        assert_eq!(Zone::Utc.stamp(ts), ts);
        assert_eq!(Zone::Utc.stamp("2026-04-10T08:52:46.130211+02:00"), ts);
        assert_eq!(
            Zone::Utc.stamp("2026-04-10T06:52:46Z"),
            "2026-04-10T06:52:46.000000Z"
        );
    }

    #[test]
    fn local_stamps_carry_the_offset_of_their_moment() {
        let ts = "2026-04-10T06:52:46.130211Z";
        let t = DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc);
        let off = Zone::Local.offset(t);
        let shown = Zone::Local.stamp(ts);
        // Whatever this machine's zone: the same moment, in its offset.
        assert_eq!(DateTime::parse_from_rfc3339(&shown).unwrap(), t);
        assert_eq!(
            shown.ends_with('Z'),
            off.local_minus_utc() == 0,
            "{shown} at offset {off}"
        );
    }

    #[test]
    fn a_zone_at_utc_is_labelled_utc() {
        let t = DateTime::parse_from_rfc3339("2026-04-10T06:52:46Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Zone::Utc.label(t), "UTC");
        let local = Zone::Local.label(t);
        match Zone::Local.offset(t).local_minus_utc() {
            0 => assert_eq!(local, "UTC"),
            _ => assert!(
                local.starts_with("UTC+") || local.starts_with("UTC-"),
                "{local}"
            ),
        }
    }

    #[test]
    fn text_that_is_not_a_time_is_left_alone() {
        assert_eq!(Zone::Local.stamp("yesterday"), "yesterday");
        assert_eq!(Zone::Utc.stamp(""), "");
    }
}
