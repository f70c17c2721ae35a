//! Human durations as kubectl shows them: apimachinery's `duration.HumanDuration` (AGE, `RESTARTS (… ago)`, event
//! LAST SEEN), its terse sibling `ShortHumanDuration`, and the printers' `translateTimestampSince`.
//!
//! Pure: the current time is always a parameter. Kubernetes' rounding is kept exactly: every unit is truncated, never
//! rounded, and a clock skew of up to one second in the future still reads `0s`.

use jiff::{SignedDuration, Timestamp};

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Kubernetes counts a year as 365 days (`24*365` hours in `duration.go`), never a calendar year.
const YEAR: i64 = 365 * DAY;

/// What apimachinery prints for a duration more than one second negative: the timestamp is in the future.
const INVALID: &str = "<invalid>";
/// What the printers show for an absent (or Go zero-valued) timestamp.
const UNKNOWN: &str = "<unknown>";

/// The number of whole seconds in `d`, truncated toward zero as Go's `int(d.Seconds())` does.
fn whole_seconds(d: SignedDuration) -> i64 {
    d.as_secs()
}

/// `d` as apimachinery's `HumanDuration` prints it, with two to three significant figures:
/// `0s`, `119s`, `5m2s`, `10m`, `179m`, `3h5m`, `8h`, `47h`, `2d5h`, `8d`, `729d`, `2y10d`, `8y`.
/// A duration of -1 s (clock skew) reads `0s`; anything further in the future reads `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = whole_seconds(d);
    if seconds < -1 {
        return INVALID.to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 2 * MINUTE {
        return format!("{seconds}s");
    }
    let minutes = seconds / MINUTE;
    if minutes < 10 {
        let s = seconds % MINUTE;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = seconds / DAY;
    if hours < 8 * 24 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 2 * 365 * 24 {
        return format!("{days}d");
    }
    let years = seconds / YEAR;
    if hours < 8 * 365 * 24 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

/// `d` as apimachinery's `ShortHumanDuration` prints it, with one unit only: `10s`, `5m`, `3h`, `2d`, `1y`.
/// Not used for pods; kept for printers (and CLI output) that use the short form.
pub fn short_human_duration(d: SignedDuration) -> String {
    let seconds = whole_seconds(d);
    if seconds < -1 {
        return INVALID.to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < MINUTE {
        return format!("{seconds}s");
    }
    if seconds < HOUR {
        return format!("{}m", seconds / MINUTE);
    }
    if seconds < DAY {
        return format!("{}h", seconds / HOUR);
    }
    if seconds < YEAR {
        return format!("{}d", seconds / DAY);
    }
    format!("{}y", seconds / YEAR)
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which `metav1.Time.IsZero` reports as unset. A stored object that
/// literally carries this timestamp prints `<unknown>` in Kubernetes too.
pub(crate) fn is_go_zero_time(ts: Timestamp) -> bool {
    // Seconds from 0001-01-01T00:00:00Z to the Unix epoch.
    const GO_ZERO_UNIX_SECONDS: i64 = -62_135_596_800;
    ts.as_second() == GO_ZERO_UNIX_SECONDS && ts.subsec_nanosecond() == 0
}

/// The printers' `translateTimestampSince`: how long ago `ts` was at `now`, as [`human_duration`]; `<unknown>` when
/// the timestamp is absent.
pub fn translate_timestamp_since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) if !is_go_zero_time(ts) => human_duration(now.duration_since(ts)),
        _ => UNKNOWN.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    fn human(s: i64) -> String {
        human_duration(secs(s))
    }

    #[test]
    fn seconds_up_to_two_minutes() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(1), "1s");
        assert_eq!(human(59), "59s");
        assert_eq!(human(60), "60s");
        assert_eq!(human(119), "119s");
    }

    #[test]
    fn sub_second_parts_are_truncated() {
        assert_eq!(human_duration(SignedDuration::from_millis(999)), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(119_999)), "119s");
        assert_eq!(human_duration(SignedDuration::from_millis(120_000)), "2m");
    }

    #[test]
    fn negative_durations() {
        // Up to one second of clock skew reads as now.
        assert_eq!(human_duration(SignedDuration::from_millis(-500)), "0s");
        assert_eq!(human(-1), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(-1_999)), "0s");
        assert_eq!(human(-2), "<invalid>");
        assert_eq!(human(-3600), "<invalid>");
    }

    #[test]
    fn minutes() {
        assert_eq!(human(120), "2m");
        assert_eq!(human(5 * 60 + 2), "5m2s");
        assert_eq!(human(9 * 60 + 59), "9m59s");
        assert_eq!(human(10 * 60), "10m");
        assert_eq!(human(10 * 60 + 59), "10m");
        assert_eq!(human(179 * 60 + 59), "179m");
    }

    #[test]
    fn hours() {
        assert_eq!(human(3 * HOUR), "3h");
        assert_eq!(human(3 * HOUR + 5 * 60), "3h5m");
        assert_eq!(human(3 * HOUR + 5 * 60 + 59), "3h5m");
        assert_eq!(human(7 * HOUR + 59 * 60), "7h59m");
        assert_eq!(human(8 * HOUR), "8h");
        assert_eq!(human(8 * HOUR + 30 * 60), "8h");
        assert_eq!(human(47 * HOUR + 59 * 60), "47h");
    }

    #[test]
    fn days() {
        assert_eq!(human(48 * HOUR), "2d");
        assert_eq!(human(2 * DAY + 5 * HOUR), "2d5h");
        assert_eq!(human(7 * DAY + 23 * HOUR), "7d23h");
        assert_eq!(human(8 * DAY), "8d");
        assert_eq!(human(8 * DAY + 23 * HOUR), "8d");
        assert_eq!(human(729 * DAY), "729d");
        assert_eq!(human(2 * YEAR - 1), "729d");
    }

    #[test]
    fn years() {
        assert_eq!(human(2 * YEAR), "2y");
        assert_eq!(human(2 * YEAR + 10 * DAY), "2y10d");
        assert_eq!(human(7 * YEAR + 364 * DAY), "7y364d");
        assert_eq!(human(8 * YEAR), "8y");
        assert_eq!(human(8 * YEAR + 100 * DAY), "8y");
        assert_eq!(human(300 * YEAR), "300y");
    }

    #[test]
    fn every_example_of_the_reference() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (302, "5m2s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + 300, "3h5m"),
            (7 * HOUR + 59 * 60, "7h59m"),
            (8 * HOUR, "8h"),
            (47 * HOUR, "47h"),
            (2 * DAY, "2d"),
            (2 * DAY + 5 * HOUR, "2d5h"),
            (7 * DAY + 23 * HOUR, "7d23h"),
            (8 * DAY, "8d"),
            (729 * DAY, "729d"),
            (2 * YEAR, "2y"),
            (2 * YEAR + 10 * DAY, "2y10d"),
            (8 * YEAR, "8y"),
        ];
        for (s, want) in cases {
            assert_eq!(human(s), want, "{s} seconds");
        }
    }

    #[test]
    fn short_form() {
        let short = |s| short_human_duration(secs(s));
        assert_eq!(short(-2), "<invalid>");
        assert_eq!(short(-1), "0s");
        assert_eq!(short(0), "0s");
        assert_eq!(short(10), "10s");
        assert_eq!(short(59), "59s");
        assert_eq!(short(60), "1m");
        assert_eq!(short(5 * 60 + 59), "5m");
        assert_eq!(short(3 * HOUR + 59 * 60), "3h");
        assert_eq!(short(2 * DAY + 23 * HOUR), "2d");
        assert_eq!(short(364 * DAY), "364d");
        assert_eq!(short(YEAR), "1y");
        assert_eq!(short(3 * YEAR + 200 * DAY), "3y");
    }

    #[test]
    fn timestamps_since() {
        let now: Timestamp = "2026-11-24T21:27:08Z".parse().unwrap();
        let created: Timestamp = "2026-11-24T21:27:01Z".parse().unwrap();
        assert_eq!(translate_timestamp_since(Some(created), now), "7s");
        assert_eq!(translate_timestamp_since(None, now), "<unknown>");
        let earlier: Timestamp = "2026-11-22T16:00:00Z".parse().unwrap();
        assert_eq!(translate_timestamp_since(Some(earlier), now), "2d5h");
        let future: Timestamp = "2026-11-24T21:30:00Z".parse().unwrap();
        assert_eq!(translate_timestamp_since(Some(future), now), "<invalid>");
        let go_zero: Timestamp = "0001-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(translate_timestamp_since(Some(go_zero), now), "<unknown>");
    }
}
