//! Timestamps as the API and the database carry them: ISO 8601 UTC with microseconds.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A UTC instant with microsecond precision, written `2026-11-25T10:00:00.123456Z`.
///
/// The fixed-width text form sorts lexicographically in time order, which is how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_micros(Utc::now().timestamp_micros())
    }

    /// The instant `micros` microseconds after the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Self(Utc.timestamp_micros(micros).single().unwrap_or_default())
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    /// The calendar year, used by naming series such as `ORG-YYYY-NNNNN`.
    pub fn year(self) -> i32 {
        use chrono::Datelike;
        self.0.year()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

/// The text was not an ISO 8601 timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTimestamp;

impl fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected an ISO 8601 timestamp such as 2026-11-25T10:00:00.123456Z")
    }
}

impl std::error::Error for InvalidTimestamp {}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = DateTime::parse_from_rfc3339(s).map_err(|_| InvalidTimestamp)?;
        Ok(Self::from_micros(parsed.with_timezone(&Utc).timestamp_micros()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds_and_round_trips() {
        let ts: Timestamp = "2026-11-25T10:00:00.123456Z".parse().expect("valid");
        assert_eq!(ts.to_string(), "2026-11-25T10:00:00.123456Z");
        let offset: Timestamp = "2026-11-25T11:00:00.5+01:00".parse().expect("valid");
        assert_eq!(offset.to_string(), "2026-11-25T10:00:00.500000Z");
        assert!("yesterday".parse::<Timestamp>().is_err());
    }
}
