//! Timestamps of the state directory: a point in time, written and shown as RFC 3339 UTC
//! with milliseconds (`2026-11-28T17:09:38.291Z`), read back leniently (seconds or more
//! digits, any RFC 3339 form humantime accepts).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// Now, to the millisecond (what is written is what is read back).
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    pub fn system_time(self) -> SystemTime {
        self.0
    }

    /// How long ago this was (zero for a time in the future, e.g. clock skew).
    pub fn age(self) -> Duration {
        SystemTime::now().duration_since(self.0).unwrap_or_default()
    }

    /// Time from `earlier` to this (zero when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        self.0.duration_since(earlier.0).unwrap_or_default()
    }
}

impl From<SystemTime> for Timestamp {
    /// Truncated to the millisecond.
    fn from(t: SystemTime) -> Self {
        let ms = |d: Duration| Duration::from_millis(d.as_millis() as u64);
        Timestamp(match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => SystemTime::UNIX_EPOCH + ms(d),
            Err(e) => SystemTime::UNIX_EPOCH - ms(e.duration()),
        })
    }
}

/// Test literals: `"2024-01-01T00:00:00Z".into()`.
#[cfg(test)]
impl From<&str> for Timestamp {
    fn from(s: &str) -> Self {
        s.parse().expect("a valid RFC 3339 test timestamp")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl FromStr for Timestamp {
    type Err = humantime::TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_rfc3339_weak(s.trim()).map(Timestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("bad timestamp {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_out_lenient_in() {
        let t: Timestamp = "2024-01-02T03:04:05.678Z".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-02T03:04:05.678Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2024-01-02T03:04:05.678Z\"");
        let back: Timestamp = serde_json::from_str("\"2024-01-02T03:04:05Z\"").unwrap();
        assert_eq!(back.to_string(), "2024-01-02T03:04:05.000Z");
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        let later: Timestamp = "2024-01-02T03:04:06.678Z".parse().unwrap();
        assert_eq!(later.since(t), Duration::from_secs(1));
        assert_eq!(t.since(later), Duration::ZERO);
    }
}
