//! `[database]`: connection pool and query settings.

use super::{ConfigErrors, Validate};
use serde::{Deserialize, Serialize};

/// Connection pool and query settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a request waits for a free connection before failing with 503.
    pub acquire_timeout_ms: u64,
    /// Queries slower than this count in `db_slow_queries_total` and are logged.
    pub slow_query_ms: u64,
    /// SQLite only: how long a writer waits for the database lock.
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout_ms: 5_000,
            slow_query_ms: 200,
            sqlite_busy_timeout_ms: 5_000,
        }
    }
}

impl Validate for DatabaseConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.max_connections >= 1,
            "database.max_connections",
            "must be at least 1",
        );
        // Compared only with a usable maximum, so that one bad value reports one error.
        errors.require(
            self.max_connections == 0 || self.min_connections <= self.max_connections,
            "database.min_connections",
            "must not exceed database.max_connections",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    #[test]
    fn each_unusable_database_value_is_reported_under_its_key() {
        assert_each_reported(
            &DatabaseConfig::default(),
            reported_keys,
            &[
                (|c| c.max_connections = 0, "database.max_connections"),
                (|c| c.min_connections = 11, "database.min_connections"),
            ],
        );
    }
}
