//! The feed's opaque watermark, and where a feed starts: after a watermark or after a time.
//!
//! A watermark names a position in one organization's change log: `v1:<organization>:<seq>`,
//! hex-encoded so clients treat it as opaque. Change-log rows of an organization commit in `seq`
//! order (writers hold the organization's `sync_cursor` row lock until they commit), so "every row
//! with a greater seq" is exactly the set of changes the client has not seen.

use crate::SyncError;
use dartwing_core::Timestamp;

const VERSION: &str = "v1";

/// A decoded watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// The last change-log seq the client has seen (0 = none).
    pub seq: i64,
}

impl Watermark {
    /// Encodes the position `seq` in `organization`'s change log.
    pub fn encode(organization: &str, seq: i64) -> String {
        hex::encode(format!("{VERSION}:{organization}:{seq}"))
    }

    /// Decodes a watermark issued for `organization`.
    pub fn decode(organization: &str, text: &str) -> Result<Self, SyncError> {
        let bytes = hex::decode(text).map_err(|_| SyncError::InvalidWatermark)?;
        let text = String::from_utf8(bytes).map_err(|_| SyncError::InvalidWatermark)?;
        let rest = text
            .strip_prefix(VERSION)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or(SyncError::InvalidWatermark)?;
        let (org, seq) = rest.rsplit_once(':').ok_or(SyncError::InvalidWatermark)?;
        if org != organization {
            return Err(SyncError::InvalidWatermark);
        }
        let seq: i64 = seq.parse().map_err(|_| SyncError::InvalidWatermark)?;
        if seq < 0 {
            return Err(SyncError::InvalidWatermark);
        }
        Ok(Self { seq })
    }
}

/// Where a feed page starts, as the client's `since` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// After a watermark the feed issued.
    After(Watermark),
    /// After the changes written up to this time (Frappe clients send `modified` times): the
    /// feed starts at the first change written later. Changes are ordered by their seq, not
    /// their time, so a page may repeat a change written at about that time; clients apply
    /// rows idempotently.
    AfterTime(Timestamp),
}

impl FeedStart {
    /// Reads `since`: a watermark of `organization`, an ISO 8601 timestamp, or Frappe's
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC).
    pub fn parse(organization: &str, since: &str) -> Result<Self, SyncError> {
        if let Ok(mark) = Watermark::decode(organization, since) {
            return Ok(Self::After(mark));
        }
        parse_time(since)
            .map(Self::AfterTime)
            .ok_or(SyncError::InvalidWatermark)
    }
}

fn parse_time(text: &str) -> Option<Timestamp> {
    if let Ok(time) = text.parse() {
        return Some(time);
    }
    // Frappe's own datetime form: a space for the `T` and no offset (the site's time zone,
    // which for this server is UTC).
    let (date, time) = text.split_once(' ')?;
    format!("{date}T{time}Z").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_or_garbled_watermarks() {
        let w = Watermark::encode("ORG-2026-00001", 42);
        assert_eq!(Watermark::decode("ORG-2026-00001", &w), Ok(Watermark { seq: 42 }));
        assert_eq!(
            Watermark::decode("ORG-2026-00002", &w),
            Err(SyncError::InvalidWatermark)
        );
        for bad in [
            "",
            "zz",
            "not-hex",
            &hex::encode("v2:ORG:1"),
            &hex::encode("v1:ORG:-1"),
            &hex::encode("v1:ORG:x"),
        ] {
            assert_eq!(Watermark::decode("ORG", bad), Err(SyncError::InvalidWatermark), "{bad}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// A watermark decodes only for the organization it was issued to, to its own position;
            /// any other text is refused, never a panic.
            #[test]
            fn watermarks_round_trip_and_garbage_is_refused(
                organization in "[A-Z0-9-]{1,20}",
                other in "[A-Z0-9-]{1,20}",
                seq in 0i64..i64::MAX,
                garbage in any::<String>(),
                bytes in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mark = Watermark::encode(&organization, seq);
                prop_assert_eq!(Watermark::decode(&organization, &mark), Ok(Watermark { seq }));
                if other != organization {
                    prop_assert_eq!(Watermark::decode(&other, &mark), Err(SyncError::InvalidWatermark));
                }
                if let Ok(decoded) = Watermark::decode(&organization, &garbage) {
                    prop_assert!(decoded.seq >= 0);
                }
                if let Ok(decoded) = Watermark::decode(&organization, &hex::encode(&bytes)) {
                    prop_assert!(decoded.seq >= 0);
                }
            }
        }
    }

    #[test]
    fn since_is_a_watermark_or_a_time() {
        let w = Watermark::encode("ORG-2026-00001", 7);
        assert_eq!(
            FeedStart::parse("ORG-2026-00001", &w),
            Ok(FeedStart::After(Watermark { seq: 7 }))
        );
        let time: Timestamp = "2026-01-31T10:00:00.250000Z".parse().expect("valid");
        for text in [
            "2026-01-31T10:00:00.25Z",
            "2026-01-31T11:00:00.25+01:00",
            "2026-01-31 10:00:00.250000",
        ] {
            assert_eq!(
                FeedStart::parse("ORG-2026-00001", text),
                Ok(FeedStart::AfterTime(time)),
                "{text}"
            );
        }
        for bad in [
            "2026-01-31",
            "yesterday",
            "2026-13-01 10:00:00",
            &Watermark::encode("ORG-2026-00002", 7),
        ] {
            assert_eq!(
                FeedStart::parse("ORG-2026-00001", bad),
                Err(SyncError::InvalidWatermark),
                "{bad}"
            );
        }
    }
}
