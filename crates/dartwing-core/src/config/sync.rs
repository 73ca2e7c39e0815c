//! `[sync]`: offline sync and conflict strategies (SPEC §7).

use super::validate::is_http_url;
use super::{ConfigErrors, Validate, text};
use serde::{Deserialize, Serialize};

/// Offline sync settings (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Conflict strategy per DocType; a DocType not listed uses the `_default` entry (or
    /// `server_wins` when there is none). Setting the list replaces the whole default table.
    pub strategies: Vec<DocTypeStrategy>,
    /// Largest document (its JSON `data` after the change) accepted, in bytes.
    pub max_document_bytes: usize,
    /// Most items one `upsert_batch` accepts.
    pub max_batch_items: usize,
    /// Change-log rows older than this are compacted daily (a document's latest change is kept);
    /// a watermark from before the compaction answers 410 `ResyncRequired`.
    pub change_log_retention_days: u32,
    /// Rows a feed page returns when the request names no `limit`.
    pub feed_limit_default: u32,
    /// Most rows a feed page returns (larger `limit`s are capped).
    pub feed_limit_max: u32,
    /// Optional HTTP merge hook tried before a `manual_resolve` conflict is stored; unset = off.
    #[serde(deserialize_with = "text::optional")]
    pub merge_hook_url: Option<String>,
    /// How long the merge hook may take before manual resolution is used.
    pub merge_hook_timeout_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let list = |fields: &[&str]| fields.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        let entry = |doctype: &str, strategy, server: &[&str], client: &[&str], auto: &[&str]| DocTypeStrategy {
            doctype: doctype.to_string(),
            strategy,
            server_fields: list(server),
            client_fields: list(client),
            auto_merge_fields: list(auto),
        };
        use ConflictStrategy::*;
        Self {
            strategies: vec![
                entry("Organization", ServerWins, &[], &[], &[]),
                entry("Person", ServerWins, &[], &[], &[]),
                entry("Org Member", ServerWins, &[], &[], &[]),
                entry(
                    "Task",
                    FieldLevel,
                    &["status", "assigned_to", "priority", "due_date"],
                    &["notes", "description"],
                    &[],
                ),
                entry("Calendar Event", ManualResolve, &[], &[], &["notes"]),
                entry("Notification", ClientWins, &[], &["read_state", "dismissed"], &[]),
                entry("Comment", AppendOnly, &[], &[], &[]),
                entry("File", ServerWins, &[], &[], &[]),
                entry(
                    "Equipment",
                    FieldLevel,
                    &["assigned_to", "current_location", "status"],
                    &["notes"],
                    &[],
                ),
                entry("_default", ServerWins, &[], &[], &[]),
            ],
            max_document_bytes: 256 * 1024,
            max_batch_items: 500,
            change_log_retention_days: 30,
            feed_limit_default: 100,
            feed_limit_max: 500,
            merge_hook_url: None,
            merge_hook_timeout_ms: 2_000,
        }
    }
}

impl SyncConfig {
    /// The strategy entry of `doctype`: its own, else `_default`, else plain `server_wins`.
    pub fn strategy_for(&self, doctype: &str) -> DocTypeStrategy {
        self.strategies
            .iter()
            .find(|s| s.doctype == doctype)
            .or_else(|| self.strategies.iter().find(|s| s.doctype == "_default"))
            .cloned()
            .unwrap_or_else(|| DocTypeStrategy {
                doctype: "_default".into(),
                strategy: ConflictStrategy::ServerWins,
                server_fields: Vec::new(),
                client_fields: Vec::new(),
                auto_merge_fields: Vec::new(),
            })
    }
}

/// How stale writes of one DocType are resolved (SPEC §7 defaults table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocTypeStrategy {
    /// The DocType, or `_default` for every DocType not listed.
    pub doctype: String,
    /// The strategy.
    pub strategy: ConflictStrategy,
    /// `field_level`: fields changed on both sides where the server's value stands.
    #[serde(default)]
    pub server_fields: Vec<String>,
    /// `field_level`: fields changed on both sides where the client's value is taken.
    #[serde(default)]
    pub client_fields: Vec<String>,
    /// `manual_resolve`: fields whose client value is merged even while the rest awaits resolution.
    #[serde(default)]
    pub auto_merge_fields: Vec<String>,
}

/// A conflict strategy (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// The server's version stands; the client is told (`discarded`).
    ServerWins,
    /// The client's version is applied.
    ClientWins,
    /// Three-way merge per field against the version the client based its change on.
    FieldLevel,
    /// The conflict is stored for a person to resolve with a later `force` item.
    ManualResolve,
    /// Inserts only; updates are rejected, deletes write tombstones.
    AppendOnly,
    /// The newer `client_ts`/`modified` wins; the overwrite is recorded in the version history.
    LastWriteWins,
}

impl ConflictStrategy {
    /// The name used in configuration and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStrategy::ServerWins => "server_wins",
            ConflictStrategy::ClientWins => "client_wins",
            ConflictStrategy::FieldLevel => "field_level",
            ConflictStrategy::ManualResolve => "manual_resolve",
            ConflictStrategy::AppendOnly => "append_only",
            ConflictStrategy::LastWriteWins => "last_write_wins",
        }
    }
}

impl Validate for SyncConfig {
    fn validate(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.max_document_bytes >= 64,
            "sync.max_document_bytes",
            "must be at least 64",
        );
        errors.require(self.max_batch_items >= 1, "sync.max_batch_items", "must be at least 1");
        errors.require(self.feed_limit_max >= 1, "sync.feed_limit_max", "must be at least 1");
        errors.require(
            self.feed_limit_default >= 1,
            "sync.feed_limit_default",
            "must be at least 1",
        );
        // Compared only with a usable maximum, so that one bad value reports one error.
        errors.require(
            self.feed_limit_max == 0 || self.feed_limit_default <= self.feed_limit_max,
            "sync.feed_limit_default",
            "must not exceed sync.feed_limit_max",
        );
        errors.require(
            self.merge_hook_url.as_deref().is_none_or(is_http_url),
            "sync.merge_hook_url",
            "must be an http:// or https:// URL",
        );
        let mut seen = std::collections::HashSet::new();
        errors.require(
            self.strategies
                .iter()
                .all(|entry| !entry.doctype.is_empty() && seen.insert(entry.doctype.as_str())),
            "sync.strategies",
            "each entry needs a distinct, non-empty doctype",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::{assert_each_reported, reported_keys};
    use super::*;

    #[test]
    fn each_unusable_sync_value_is_reported_under_its_key() {
        assert_each_reported(
            &SyncConfig::default(),
            reported_keys,
            &[
                (|c| c.max_document_bytes = 63, "sync.max_document_bytes"),
                (|c| c.max_batch_items = 0, "sync.max_batch_items"),
                (|c| c.feed_limit_max = 0, "sync.feed_limit_max"),
                (|c| c.feed_limit_default = 0, "sync.feed_limit_default"),
                (|c| c.feed_limit_default = 501, "sync.feed_limit_default"),
                (
                    |c| c.merge_hook_url = Some("hooks.example.com/merge".into()),
                    "sync.merge_hook_url",
                ),
                (|c| c.strategies[0].doctype.clear(), "sync.strategies"),
                (|c| c.strategies[1].doctype = "Organization".into(), "sync.strategies"),
            ],
        );
    }
}
