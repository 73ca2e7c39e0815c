//! Configuration structs with their defaults and validation (SPEC §10).
//!
//! Loading (TOML file + `DARTWING_*` environment) happens in the binary; this module defines
//! every key once, one file per section. `docs/configuration.md` documents each key and a test
//! checks it lists them all.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

mod auth;
mod database;
mod http;
mod integrations;
mod jobs;
mod observability;
mod realtime;
mod roles;
mod secret;
mod sync;
mod tenancy;
mod text;
mod validate;

pub use auth::AuthConfig;
pub use database::DatabaseConfig;
pub use http::HttpConfig;
pub use integrations::{IntegrationsConfig, ProviderConfig, SmtpConfig, SmtpSecurity};
pub use jobs::{JobTypeConfig, JobsConfig, LimitMode, QueueConfig, QueuesConfig, SubmitRule, WebhookConfig};
pub use observability::{LogFormat, ObservabilityConfig};
pub use realtime::{CustomRoomPolicy, RealtimeConfig};
pub use roles::{Role, Roles};
pub use secret::Secret;
pub use sync::{ConflictStrategy, DocTypeStrategy, SyncConfig};
pub use tenancy::TenancyConfig;
use validate::{CHANNEL_NAME_RULE, is_channel_name};
pub use validate::{ConfigErrors, InvalidConfig, Validate};

/// The whole runtime configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP listener (API, Socket.IO, metrics, health).
    pub listen: SocketAddr,
    /// Stable id of this node in metrics and logs; default `<hostname>:<port>`.
    #[serde(deserialize_with = "text::optional")]
    pub node_id: Option<String>,
    /// Roles this process runs.
    pub roles: Roles,
    /// Directory for the embedded SQLite database and generated secrets.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: `dartwing.db` in `data_dir`. Shown with its
    /// password hidden.
    #[serde(deserialize_with = "secret::optional_url")]
    pub database_url: Option<Secret>,
    /// `redis://…`; set to run in cluster mode. Shown with its password hidden.
    #[serde(deserialize_with = "secret::optional_url")]
    pub redis_url: Option<Secret>,
    /// HS256 secret for end-user JWTs; default in embedded mode: generated into `data_dir`.
    pub jwt_secret: Option<Secret>,
    /// Production mode: refuse to start without explicit secrets instead of generating them.
    pub production: bool,
    /// Connection pool and query settings.
    pub database: DatabaseConfig,
    /// HTTP listener settings.
    pub http: HttpConfig,
    /// End-user authentication.
    pub auth: AuthConfig,
    /// Organizations, People and Org Members.
    pub tenancy: TenancyConfig,
    /// Metrics, logs and health.
    pub observability: ObservabilityConfig,
    /// Background job queues.
    pub jobs: JobsConfig,
    /// Realtime gateway (Socket.IO).
    pub realtime: RealtimeConfig,
    /// Offline sync.
    pub sync: SyncConfig,
    /// Integration token vault.
    pub integrations: IntegrationsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            node_id: None,
            roles: Roles::all(),
            data_dir: PathBuf::from("./dartwing-data"),
            database_url: None,
            redis_url: None,
            jwt_secret: None,
            production: false,
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            tenancy: TenancyConfig::default(),
            observability: ObservabilityConfig::default(),
            jobs: JobsConfig::default(),
            realtime: RealtimeConfig::default(),
            sync: SyncConfig::default(),
            integrations: IntegrationsConfig::default(),
        }
    }
}

impl Config {
    /// Checks the values that types alone cannot and returns every unusable one, each under
    /// its full dotted key: first the top-level keys, then each section (which checks itself),
    /// then the rules that tie sections together.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        // Every field is named, so a new section fails to compile here until it is checked.
        let Config {
            listen: _,
            node_id: _,
            roles: _,
            data_dir: _,
            database_url: _,
            redis_url: _,
            jwt_secret: _,
            production: _,
            database,
            http,
            auth,
            tenancy,
            observability,
            jobs,
            realtime,
            sync,
            integrations,
        } = self;
        let mut errors = ConfigErrors::new();
        self.validate_top_level(&mut errors);
        database.validate(&mut errors);
        http.validate(&mut errors);
        auth.validate(&mut errors);
        tenancy.validate(&mut errors);
        observability.validate(&mut errors);
        jobs.validate(&mut errors);
        realtime.validate(&mut errors);
        sync.validate(&mut errors);
        integrations.validate(&mut errors);
        self.validate_across_sections(&mut errors);
        errors.into_result()
    }

    /// The keys that belong to no section.
    fn validate_top_level(&self, errors: &mut ConfigErrors) {
        errors.require(
            self.database_url.as_ref().map(Secret::expose).is_none_or(|url| {
                url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
            }),
            "database_url",
            "must start with sqlite:, postgres:// or postgresql://",
        );
        errors.require(
            self.redis_url
                .as_ref()
                .map(Secret::expose)
                .is_none_or(|url| url.starts_with("redis://") || url.starts_with("rediss://")),
            "redis_url",
            "must start with redis:// or rediss://",
        );
        errors.require(
            self.node_id.as_deref().is_none_or(|node_id| {
                !node_id.is_empty() && node_id.len() <= 128 && !node_id.chars().any(char::is_control)
            }),
            "node_id",
            "must be 1-128 printable characters",
        );
        errors.require(
            self.jwt_secret
                .as_ref()
                .is_none_or(|secret| secret.expose().len() >= 32),
            "jwt_secret",
            "must be at least 32 characters",
        );
    }

    /// Rules that involve keys of more than one section (or a section and a top-level key).
    fn validate_across_sections(&self, errors: &mut ConfigErrors) {
        errors.require(
            !self.production || self.jwt_secret.is_some() || self.auth.jwks_url.is_some(),
            "jwt_secret",
            "production mode needs jwt_secret or auth.jwks_url",
        );
        let observability = &self.observability;
        errors.require(
            !self.production || observability.metrics_token.is_some() || observability.metrics_listen.is_some(),
            "observability.metrics_token",
            "production mode needs a metrics token (or observability.metrics_listen, a private listener for /metrics)",
        );
        errors.require(
            !observability
                .metrics_listen
                .is_some_and(|metrics| metrics == self.listen && metrics.port() != 0),
            "observability.metrics_listen",
            "must differ from listen",
        );
    }

    /// The node id: configured, else `<hostname>:<port>`.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("{host}:{}", self.listen.port())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::validate::assert_each_reported;
    use super::*;

    #[test]
    fn defaults_are_valid_and_roles_parse() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(
            Roles::parse("worker, api,worker").map(|r| r.to_string()),
            Ok("worker,api".into())
        );
        assert!(Roles::parse("api,web").is_err());
        assert!(Roles::parse("").is_err());
    }

    /// The keys `config.validate()` reports, in order.
    fn reported_keys(config: &Config) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.keys().into_iter().map(str::to_string).collect(),
        }
    }

    #[test]
    fn invalid_values_name_their_key() {
        let config = Config {
            database: DatabaseConfig {
                max_connections: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(reported_keys(&config), ["database.max_connections"]);
        let config = Config {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert_eq!(reported_keys(&config), ["database_url"]);
    }

    #[test]
    fn each_unusable_top_level_value_is_reported_under_its_key() {
        assert_each_reported(
            &Config::default(),
            reported_keys,
            &[
                (|c| c.database_url = Some(Secret::url("mysql://db/x")), "database_url"),
                (|c| c.redis_url = Some(Secret::url("http://cache:6379")), "redis_url"),
                (|c| c.node_id = Some(String::new()), "node_id"),
                (|c| c.node_id = Some("node\n1".into()), "node_id"),
                (|c| c.node_id = Some("n".repeat(129)), "node_id"),
                (|c| c.jwt_secret = Some("s".repeat(31).into()), "jwt_secret"),
            ],
        );
        let config = Config {
            database_url: Some(Secret::url("postgresql://db/x")),
            redis_url: Some(Secret::url("rediss://cache:6379")),
            node_id: Some("n".repeat(128)),
            jwt_secret: Some("s".repeat(32).into()),
            ..Default::default()
        };
        assert_eq!(reported_keys(&config), Vec::<String>::new());
    }

    #[test]
    fn rules_across_sections_name_the_key_to_set() {
        let production = Config {
            production: true,
            ..Default::default()
        };
        assert_eq!(
            reported_keys(&production),
            ["jwt_secret", "observability.metrics_token"],
            "production mode needs both secrets"
        );
        let mut config = production.clone();
        config.auth.jwks_url = Some("https://idp.example.com/certs".into());
        config.observability.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 9100)));
        assert_eq!(reported_keys(&config), Vec::<String>::new(), "or their alternatives");
        let mut config = production;
        config.jwt_secret = Some("s".repeat(40).into());
        config.observability.metrics_token = Some("scrape".into());
        assert_eq!(reported_keys(&config), Vec::<String>::new());
        config.observability.metrics_listen = Some(config.listen);
        assert_eq!(reported_keys(&config), ["observability.metrics_listen"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.observability.metrics_listen = Some(config.listen);
        assert_eq!(
            reported_keys(&config),
            Vec::<String>::new(),
            "two ephemeral ports differ"
        );
    }

    #[test]
    fn three_invalid_keys_in_three_sections_are_all_reported() {
        let mut config = Config::default();
        config.http.max_connections = 0;
        config.jobs.queues.bulk.workers = 0;
        config.integrations.public_base_url = Some("api.example.com".into());
        let errors = config.validate().expect_err("three invalid keys");
        assert_eq!(
            errors.keys(),
            [
                "http.max_connections",
                "jobs.queues.bulk.workers",
                "integrations.public_base_url"
            ]
        );
        let shown = errors.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines,
            [
                "invalid configuration key `http.max_connections`: must be at least 1",
                "invalid configuration key `jobs.queues.bulk.workers`: must be at least 1",
                "invalid configuration key `integrations.public_base_url`: must be an http:// or https:// URL",
            ]
        );
    }

    #[test]
    fn no_secret_setting_appears_in_debug_or_serialization() {
        let mut config = Config {
            database_url: Some(Secret::url("postgres://app:db-pass-1@db.internal/dartwing")),
            redis_url: Some(Secret::url("redis://:redis-pass-2@cache:6379/")),
            jwt_secret: Some("jwt-secret-3-0123456789abcdef0123456789".into()),
            ..Default::default()
        };
        config.observability.metrics_token = Some("metrics-token-4".into());
        config.integrations.key = Some("integration-key-5".into());
        config.integrations.previous_keys = vec!["previous-key-6".into()];
        config.integrations.smtp.password = Some("smtp-password-7".into());
        config.integrations.providers.insert(
            "Google".into(),
            ProviderConfig {
                client_id: "client".into(),
                client_secret: Some("client-secret-8".into()),
                ..Default::default()
            },
        );
        let debug = format!("{config:?}");
        let serialized = serde_json::to_string(&config).unwrap_or_default();
        for shown in [&debug, &serialized] {
            for value in [
                "db-pass-1",
                "redis-pass-2",
                "jwt-secret-3",
                "metrics-token-4",
                "integration-key-5",
                "previous-key-6",
                "smtp-password-7",
                "client-secret-8",
            ] {
                assert!(!shown.contains(value), "{value} shown: {shown}");
            }
        }
        assert!(
            serialized.contains("postgres://app:<set>@db.internal/dartwing"),
            "{serialized}"
        );
        assert_eq!(config.validate(), Ok(()));
    }
}
