//! The feed's opaque watermark.
//!
//! A watermark names a position in one organization's change log: `v1:<organization>:<seq>`,
//! hex-encoded so clients treat it as opaque. Change-log rows of an organization commit in `seq`
//! order (writers hold the organization's `sync_cursor` row lock until they commit), so "every row
//! with a greater seq" is exactly the set of changes the client has not seen.

use crate::SyncError;

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
}
