//! Identifiers: trace ids, random secrets and naming series.

use rand::Rng;
use std::fmt;

/// A request's trace id: 32 lower-case hex digits (W3C trace-id), or an id supplied by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceId(String);

impl TraceId {
    /// A new random W3C trace id.
    pub fn generate() -> Self {
        Self(random_hex(16))
    }

    /// Accepts a caller-supplied id of 1–64 characters from `[A-Za-z0-9_-]`; anything else is ignored
    /// so that a header cannot inject text into logs.
    pub fn from_header(value: &str) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_string()))
    }

    /// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if valid.
    pub fn from_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let valid = hex(version, 2)
            && version != "ff"
            && hex(trace, 32)
            && trace.bytes().any(|b| b != b'0')
            && hex(parent, 16)
            && hex(flags, 2)
            && (version != "00" || parts.next().is_none());
        valid.then(|| Self(trace.to_ascii_lowercase()))
    }

    /// A `traceparent` header value carrying this trace id (when it is a W3C id) and a new span id.
    pub fn traceparent(&self) -> Option<String> {
        let w3c = self.0.len() == 32 && self.0.bytes().all(|b| b.is_ascii_hexdigit());
        w3c.then(|| format!("00-{}-{}-01", self.0.to_ascii_lowercase(), random_hex(8)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `bytes` random bytes from the OS-seeded generator, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// A naming series such as `ORG-.YYYY.-.#####`: prefix, year and a zero-padded counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamingSeries {
    /// Text before the year, e.g. `ORG`.
    pub prefix: &'static str,
    /// Width of the zero-padded counter.
    pub digits: usize,
}

impl NamingSeries {
    /// The counter key for `year`, e.g. `ORG-2026-`.
    pub fn key(&self, year: i32) -> String {
        format!("{}-{year}-", self.prefix)
    }

    /// The name for counter value `n` in `year`, e.g. `ORG-2026-00001`.
    pub fn name(&self, year: i32, n: i64) -> String {
        format!("{}{n:0width$}", self.key(year), width = self.digits)
    }

    /// The series written as a pattern for messages, e.g. `ORG-YYYY-#####`.
    pub fn pattern(&self) -> String {
        format!("{}-YYYY-{}", self.prefix, "#".repeat(self.digits))
    }

    /// Whether `name` lies inside this series for any year and any number of digits (the prefix
    /// compared ignoring ASCII case), e.g. `ORG-1999-7` or `org-2026-000001` for `ORG`. Such names
    /// are reserved for the server, so that an explicit name can never take a generated one.
    pub fn contains(&self, name: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        name.get(..self.prefix.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(self.prefix))
            && name[self.prefix.len()..]
                .strip_prefix('-')
                .and_then(|rest| rest.split_once('-'))
                .is_some_and(|(year, counter)| digits(year) && digits(counter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_from_headers() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceId::from_traceparent(tp).map(|t| t.0),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".into())
        );
        assert!(TraceId::from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(TraceId::from_traceparent("garbage").is_none());
        assert!(TraceId::from_header("abc-123_X").is_some());
        assert!(TraceId::from_header("bad\nvalue").is_none());
        assert!(TraceId::from_header(&"x".repeat(65)).is_none());
        let generated = TraceId::generate();
        assert_eq!(generated.as_str().len(), 32);
        assert!(
            generated
                .traceparent()
                .is_some_and(|tp| TraceId::from_traceparent(&tp) == Some(generated.clone()))
        );
    }

    #[test]
    fn naming_series_pads() {
        let series = NamingSeries {
            prefix: "ORG",
            digits: 5,
        };
        assert_eq!(series.name(2026, 1), "ORG-2026-00001");
        assert_eq!(series.pattern(), "ORG-YYYY-#####");
    }

    #[test]
    fn naming_series_contain_every_year_and_width() {
        let series = NamingSeries {
            prefix: "ORG",
            digits: 5,
        };
        for name in ["ORG-2026-00001", "ORG-1999-7", "org-2026-0000001", "ORG-12345-1"] {
            assert!(series.contains(name), "{name}");
        }
        for name in [
            "ORG-2026-",
            "ORG--00001",
            "ORG-2026-0001a",
            "ORGX-2026-00001",
            "ORG",
            "ACME-HQ",
            "ÖRG-2026-1",
        ] {
            assert!(!series.contains(name), "{name}");
        }
    }
}
