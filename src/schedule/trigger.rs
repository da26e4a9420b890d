//! When a schedule fires: cron expressions (through croner, in a time zone, with its DST
//! rules), fixed intervals from an anchor, and one-shot dates. Pure arithmetic on instants.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone)]
pub enum Trigger {
    Cron {
        expr: String,
        cron: Box<Cron>,
        tz: TimeZone,
    },
    /// Fires at `anchor + k * every` for k >= 1; the anchor is `start:`, or when the
    /// schedule was first seen (persisted).
    Every {
        every: Duration,
        start: Option<Timestamp>,
    },
    At(Timestamp),
}

impl Trigger {
    /// The first fire strictly after `t` (`anchor` is the first-seen time for intervals);
    /// `None` when it never fires again.
    pub fn next_after(&self, t: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        match self {
            Trigger::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&t.to_zoned(tz.clone()), false)
                .ok()
                .map(|z| z.timestamp()),
            Trigger::Every { every, start } => {
                let anchor = start.unwrap_or(anchor);
                let step = every.as_nanos() as i128;
                if step == 0 {
                    return None;
                }
                let since = t.as_nanosecond() - anchor.as_nanosecond();
                let k = if since < 0 { 1 } else { since / step + 1 };
                Timestamp::from_nanosecond(anchor.as_nanosecond() + k * step).ok()
            }
            Trigger::At(at) => (*at > t).then_some(*at),
        }
    }

    /// How the trigger is written (`cron 0 3 * * * (Europe/Berlin)`, `every 15m`, `at ...`).
    pub fn describe(&self) -> String {
        match self {
            Trigger::Cron { expr, tz, .. } => {
                format!("cron {expr} ({})", tz.iana_name().unwrap_or("UTC"))
            }
            Trigger::Every { every, .. } => format!("every {}", humantime::format_duration(*every)),
            Trigger::At(at) => format!("at {at}"),
        }
    }
}

/// The same delay in `[0, jitter)` for a schedule's fire every time it is computed (so a
/// restart does not move it).
pub fn jitter_of(name: &str, nominal: Timestamp, jitter: Duration) -> Duration {
    let ms = jitter.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    let h = blake3::hash(format!("{name}@{}", nominal.as_millisecond()).as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    Duration::from_millis(u64::from_le_bytes(b) % ms)
}

/// `t + d`, saturating.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

const FIELDS_5: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const FIELDS_6: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
];

/// Parse a cron expression (5 fields, 6 with seconds first, or an `@` alias); an error names
/// the field that is wrong.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let parser = CronParser::builder().seconds(Seconds::Optional).build();
    let expr = expr.trim();
    match parser.parse(expr) {
        Ok(c) => Ok(c),
        Err(e) if expr.starts_with('@') => Err(format!(
            "invalid cron alias {expr:?} ({e}): use @yearly, @monthly, @weekly, @daily or @hourly"
        )),
        Err(e) => {
            let fields: Vec<&str> = expr.split_whitespace().collect();
            let names: &[&str] = match fields.len() {
                5 => &FIELDS_5,
                6 => &FIELDS_6,
                n => {
                    return Err(format!(
                        "cron expression {expr:?} has {n} field(s): write 5 (minute hour day-of-month month day-of-week) or 6 (second first)"
                    ));
                }
            };
            for (i, f) in fields.iter().enumerate() {
                let mut probe = vec!["*"; fields.len()];
                probe[i] = f;
                if let Err(fe) = parser.parse(&probe.join(" ")) {
                    return Err(format!(
                        "cron expression {expr:?}: the {} field `{f}` is invalid ({fe})",
                        names[i]
                    ));
                }
            }
            Err(format!("invalid cron expression {expr:?}: {e}"))
        }
    }
}

/// An IANA time zone (the bundled database), or an error saying what to write.
pub fn parse_tz(name: &str) -> Result<TimeZone, String> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as Europe/Berlin or UTC")
    })
}

/// An instant: RFC 3339 with an offset, or a local date-time (`2026-12-01T02:00:00` or with
/// a space) in `tz`.
pub fn parse_instant(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(tz.clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            format!(
                "invalid date {text:?}: write RFC 3339 (2026-12-01T02:00:00Z) or a local date-time (2026-12-01T02:00:00)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cron(expr: &str, tz: &str) -> Trigger {
        Trigger::Cron {
            expr: expr.into(),
            cron: Box::new(parse_cron(expr).unwrap()),
            tz: parse_tz(tz).unwrap(),
        }
    }

    fn fires(t: &Trigger, from: &str, n: usize) -> Vec<String> {
        let mut at = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = t.next_after(at, ts(from)).unwrap();
            out.push(at.to_string());
        }
        out
    }

    #[test]
    fn five_and_six_fields_and_aliases() {
        assert_eq!(
            fires(&cron("0 3 * * *", "UTC"), "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T03:00:00Z", "2026-01-02T03:00:00Z"]
        );
        assert_eq!(
            fires(&cron("*/20 * * * * *", "UTC"), "2026-01-01T00:00:00Z", 2),
            ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z"]
        );
        assert_eq!(
            fires(&cron("@daily", "UTC"), "2026-01-01T12:00:00Z", 1),
            ["2026-01-02T00:00:00Z"]
        );
    }

    #[test]
    fn cron_runs_in_its_time_zone() {
        // 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC in summer.
        assert_eq!(
            fires(
                &cron("0 3 * * *", "Europe/Berlin"),
                "2026-01-01T00:00:00Z",
                1
            ),
            ["2026-01-01T02:00:00Z"]
        );
        assert_eq!(
            fires(
                &cron("0 3 * * *", "Europe/Berlin"),
                "2026-07-01T00:00:00Z",
                1
            ),
            ["2026-07-01T01:00:00Z"]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_cron("0 25 * * *").unwrap_err();
        assert!(e.contains("hour field `25`"), "{e}");
        let e = parse_cron("61 * * * * *").unwrap_err();
        assert!(e.contains("second field `61`"), "{e}");
        let e = parse_cron("0 3 * *").unwrap_err();
        assert!(e.contains("4 field(s)"), "{e}");
        let e = parse_cron("0 3 * * MON-XYZ").unwrap_err();
        assert!(e.contains("day of week"), "{e}");
        assert!(parse_cron("@sometimes").unwrap_err().contains("alias"));
    }

    #[test]
    fn intervals_keep_their_phase() {
        let t = Trigger::Every {
            every: Duration::from_secs(900),
            start: None,
        };
        let anchor = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            t.next_after(anchor, anchor),
            Some(ts("2026-01-01T00:15:00Z"))
        );
        assert_eq!(
            t.next_after(ts("2026-01-01T00:15:00Z"), anchor),
            Some(ts("2026-01-01T00:30:00Z"))
        );
        assert_eq!(
            t.next_after(ts("2026-01-01T00:16:00Z"), anchor),
            Some(ts("2026-01-01T00:30:00Z"))
        );
    }

    #[test]
    fn one_shot_dates_fire_once() {
        let utc = TimeZone::UTC;
        let t = Trigger::At(parse_instant("2026-12-01T02:00:00Z", &utc).unwrap());
        let before = ts("2026-11-30T00:00:00Z");
        assert_eq!(
            t.next_after(before, before),
            Some(ts("2026-12-01T02:00:00Z"))
        );
        assert_eq!(t.next_after(ts("2026-12-01T02:00:00Z"), before), None);
        let berlin = parse_tz("Europe/Berlin").unwrap();
        assert_eq!(
            parse_instant("2026-12-01 02:00:00", &berlin).unwrap(),
            ts("2026-12-01T01:00:00Z")
        );
        assert!(parse_instant("tomorrow", &utc).is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
    }

    #[test]
    fn jitter_is_stable_and_bounded() {
        let t = ts("2026-01-01T00:00:00Z");
        let j = jitter_of("a", t, Duration::from_secs(30));
        assert_eq!(j, jitter_of("a", t, Duration::from_secs(30)));
        assert!(j < Duration::from_secs(30));
        assert_eq!(jitter_of("a", t, Duration::ZERO), Duration::ZERO);
    }
}
