//! [`Secret`]: the one type of every secret setting. It never prints its value — not in
//! `Debug`, `Display`, serialization (`dartwing config check`), nor error messages — and hands it
//! out only through [`Secret::expose`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a secret shows instead of its value.
pub const HIDDEN: &str = "<set>";

/// A secret setting (a key, token, password, or a connection URL that may carry a password).
///
/// Plain secrets show as `<set>`. Connection URLs ([`Secret::url`]) show with only the password
/// replaced (`postgres://app:<set>@db.internal/dartwing`), so an operator can still see where
/// the node connects; a URL that cannot be parsed, or that names a password in its query, shows
/// as `<set>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    shown: String,
}

impl Secret {
    /// A secret shown as `<set>`.
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            shown: HIDDEN.to_string(),
        }
    }

    /// A connection URL whose password (if any) is the secret part.
    pub fn url(value: impl Into<String>) -> Self {
        let value = value.into();
        let shown = redacted_url(&value).unwrap_or_else(|| HIDDEN.to_string());
        Self { value, shown }
    }

    /// The value itself, for the code that uses it (signing, connecting, comparing). Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether `given` equals the secret, in time independent of where they differ (for
    /// comparing a presented token with the configured one).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.value.as_bytes(), given.as_bytes());
        let mut difference = u8::from(a.len() != b.len());
        for (i, x) in a.iter().enumerate() {
            difference |= x ^ b.get(i).copied().unwrap_or(!x);
        }
        difference == 0
    }

    /// How the secret is shown: `<set>`, or a URL with its password replaced by `<set>`.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `url` with its password replaced by `<set>`; `None` when it cannot be shown safely.
fn redacted_url(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    if url
        .query_pairs()
        .any(|(key, _)| key.to_ascii_lowercase().contains("pass"))
    {
        return None;
    }
    if url.password().is_none() {
        return Some(url.to_string());
    }
    // Serialized, a URL with credentials reads `scheme://user:password@…`: put the placeholder
    // right after `scheme://user:` (it would be percent-encoded if set as the password).
    let prefix = format!("{}://{}:", url.scheme(), url.username());
    url.set_password(Some("x")).ok()?;
    let serialized = url.as_str();
    let rest = serialized.strip_prefix(&prefix)?.strip_prefix('x')?;
    Some(format!("{prefix}{HIDDEN}{rest}"))
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.shown)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.shown)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::text::required(deserializer).map(Secret::new)
    }
}

/// `deserialize_with` for optional connection URLs (`database_url`, `redis_url`).
pub(super) fn optional_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    super::text::optional(deserializer).map(|value| value.map(Secret::url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(secret.expose(), "hunter2-hunter2");
        for shown in [
            format!("{secret}"),
            format!("{secret:?}"),
            serde_json::to_string(&secret).unwrap_or_default(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains(HIDDEN), "{shown}");
        }
    }

    #[test]
    fn urls_show_everything_but_the_password() {
        let cases = [
            (
                "postgres://app:s3cr%40t@db.internal:5432/dartwing?sslmode=require",
                "postgres://app:<set>@db.internal:5432/dartwing?sslmode=require",
            ),
            ("redis://:pw-1@cache:6379/0", "redis://:<set>@cache:6379/0"),
            ("postgres://db.example/dartwing", "postgres://db.example/dartwing"),
            (
                "sqlite:///var/lib/dartwing/dartwing.db?mode=rwc",
                "sqlite:///var/lib/dartwing/dartwing.db?mode=rwc",
            ),
            ("postgres://app@db/x?password=pw-2", HIDDEN),
            ("not a url pw-3", HIDDEN),
        ];
        for (url, shown) in cases {
            let secret = Secret::url(url);
            assert_eq!(secret.to_string(), shown);
            assert_eq!(secret.expose(), url);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
        }
    }

    #[test]
    fn matching_compares_whole_values() {
        let secret = Secret::new("token-1");
        assert!(secret.matches("token-1"));
        for other in ["token-2", "token-", "token-11", "", "\u{0}"] {
            assert!(!secret.matches(other), "{other:?}");
        }
        assert!(Secret::new("").matches(""));
    }
}
