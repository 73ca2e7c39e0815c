//! `[http]`: the HTTP listener.

use super::{ConfigErrors, Validate};
use serde::{Deserialize, Serialize};

/// HTTP listener settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted request body in bytes (413 beyond).
    pub body_limit_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
    /// A connection whose request head (request line and headers) has not arrived this long
    /// after the server started waiting for it is closed (slow clients, idle keep-alives).
    pub header_read_timeout_secs: u64,
    /// A request whose body pauses this long fails with 408.
    pub body_timeout_secs: u64,
    /// Most connections (WebSocket included) open at once on this node; beyond it new
    /// connections are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 5 * 1024 * 1024,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 10_000,
        }
    }
}

impl Validate for HttpConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.body_limit_bytes >= 1024,
            "http.body_limit_bytes",
            "must be at least 1024",
        );
        errors.require(
            self.header_read_timeout_secs >= 1,
            "http.header_read_timeout_secs",
            "must be at least 1",
        );
        errors.require(
            self.body_timeout_secs >= 1,
            "http.body_timeout_secs",
            "must be at least 1",
        );
        errors.require(self.max_connections >= 1, "http.max_connections", "must be at least 1");
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    #[test]
    fn each_unusable_http_value_is_reported_under_its_key() {
        assert_each_reported(
            &HttpConfig::default(),
            reported_keys,
            &[
                (|c| c.body_limit_bytes = 1023, "http.body_limit_bytes"),
                (|c| c.header_read_timeout_secs = 0, "http.header_read_timeout_secs"),
                (|c| c.body_timeout_secs = 0, "http.body_timeout_secs"),
                (|c| c.max_connections = 0, "http.max_connections"),
            ],
        );
    }
}
