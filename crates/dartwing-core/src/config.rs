//! Configuration structs with their defaults and validation (SPEC §10).
//!
//! Loading (TOML file + `DARTWING_*` environment) happens in the binary; this module defines
//! every key once. `docs/configuration.md` documents each key and a test checks it lists them all.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::PathBuf;

mod secret;

pub use secret::Secret;

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

/// End-user authentication (JWT) settings. The HS256 secret is the top-level `jwt_secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWKS URL for RS256/ES256 tokens (e.g. Keycloak's `…/protocol/openid-connect/certs`).
    #[serde(deserialize_with = "text::optional")]
    pub jwks_url: Option<String>,
    /// Expected `iss`; unchecked when unset.
    #[serde(deserialize_with = "text::optional")]
    pub issuer: Option<String>,
    /// Expected `aud`; unchecked when unset.
    #[serde(deserialize_with = "text::optional")]
    pub audience: Option<String>,
    /// Claim holding the user's email.
    #[serde(deserialize_with = "text::required")]
    pub user_claim: String,
    /// Dotted path of the claim listing roles (Keycloak realm roles by default).
    #[serde(deserialize_with = "text::required")]
    pub roles_claim: String,
    /// Role value that makes a user a platform administrator.
    #[serde(deserialize_with = "text::required")]
    pub admin_role: String,
    /// How long fetched JWKS keys are trusted before a refetch.
    pub jwks_cache_secs: u64,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Lifetime of tokens printed by `dartwing token issue`.
    pub dev_token_ttl_secs: u64,
    /// Refuse tokens whose `email_verified` claim is false (tokens without the claim are accepted).
    pub require_verified_email: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: None,
            issuer: None,
            audience: None,
            user_claim: "email".into(),
            roles_claim: "realm_access.roles".into(),
            admin_role: "System Manager".into(),
            jwks_cache_secs: 300,
            leeway_secs: 30,
            dev_token_ttl_secs: 86_400,
            require_verified_email: true,
        }
    }
}

/// Tenancy settings: Organizations, People and Org Members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Accept a user's open invitations on their next authenticated request instead of waiting
    /// for `accept_invitation` (for platforms whose organizations all trust each other).
    pub auto_accept_invitations: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Metrics, logs and health settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Log filter in `tracing` syntax, e.g. `info` or `info,sqlx=warn`.
    #[serde(deserialize_with = "text::required")]
    pub log_level: String,
    /// `json` or `text`.
    pub log_format: LogFormat,
    /// Log one line per HTTP request.
    pub access_log: bool,
    /// Record metrics (turning it off is for measuring their cost).
    pub metrics_enabled: bool,
    /// When set, scraping metrics requires `Authorization: Bearer <token>`. Required in
    /// production mode unless `metrics_listen` is set.
    pub metrics_token: Option<Secret>,
    /// A listener of its own for `/metrics` (e.g. `127.0.0.1:9100`, reachable only by the
    /// scraper); metrics are then no longer served on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Distinct tenant values (`org` label) tracked per metric family before they fold into `other`.
    pub max_org_label_values: usize,
    /// A worker whose heartbeat is older than this is considered dead.
    pub worker_heartbeat_timeout_secs: u64,
    /// Time limit of each health check.
    pub health_check_timeout_ms: u64,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            log_format: LogFormat::Json,
            access_log: true,
            metrics_enabled: true,
            metrics_token: None,
            metrics_listen: None,
            max_org_label_values: 500,
            worker_heartbeat_timeout_secs: 60,
            health_check_timeout_ms: 2_000,
        }
    }
}

/// What enqueue does when an organization reaches a queue's pending cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitMode {
    /// Refuse with 429 "queue full".
    Reject,
    /// Accept and warn the organization's admins.
    Warn,
}

/// Settings of one queue (SPEC §8 defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Concurrent jobs of this queue per worker process.
    pub workers: u32,
    /// A running job is cancelled after this long and follows the retry policy.
    pub timeout_secs: u64,
    /// Most pending (queued or running) jobs per organization; unset = unlimited.
    pub max_pending_per_org: Option<u32>,
    /// Most job starts per organization per minute; unset = unlimited.
    pub rate_limit_per_min: Option<u32>,
    /// Retries after the first attempt before a job is dead-lettered.
    pub retries: u32,
    /// Delay before each retry; the last value repeats if there are more retries than delays.
    pub retry_delays_secs: Vec<u64>,
    /// Job types routed to this queue; types listed nowhere go to `default`.
    pub job_types: Vec<String>,
    /// Share of this queue's worker slots on a node that one organization may hold while another
    /// organization has due jobs in the queue (a fraction in (0, 1]; at least one slot). An
    /// organization alone may use every slot. 1.0 turns the limit off.
    pub max_running_share: f64,
    /// The same limit as an absolute number of slots; overrides `max_running_share` when set.
    pub max_running_per_org: Option<u32>,
}

impl QueueConfig {
    /// Worker slots of this queue on one node that an organization may hold while another
    /// organization has due jobs in the queue: between 1 and `workers`.
    pub fn running_share_slots(&self) -> u32 {
        let slots = match self.max_running_per_org {
            Some(slots) => slots,
            // `workers` is a u32, so the product fits; the cast only drops the fraction.
            None => (f64::from(self.workers) * self.max_running_share).floor() as u32,
        };
        slots.clamp(1, self.workers.max(1))
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            timeout_secs: 300,
            max_pending_per_org: Some(500),
            rate_limit_per_min: None,
            retries: 3,
            retry_delays_secs: vec![60, 300, 900],
            job_types: Vec::new(),
            max_running_share: 0.5,
            max_running_per_org: None,
        }
    }
}

/// The three queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesConfig {
    /// Latency-sensitive jobs with their own workers.
    pub critical: QueueConfig,
    /// Everything not routed elsewhere.
    pub default: QueueConfig,
    /// Long, heavy jobs, rate limited per organization.
    pub bulk: QueueConfig,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        let types = |list: &[&str]| list.iter().map(|t| t.to_string()).collect();
        Self {
            critical: QueueConfig {
                workers: 4,
                timeout_secs: 60,
                max_pending_per_org: None,
                rate_limit_per_min: None,
                retries: 3,
                retry_delays_secs: vec![10, 30, 60],
                max_running_share: 0.5,
                max_running_per_org: None,
                job_types: types(&[
                    "fax.send",
                    "notification.send",
                    "identity.sync_session",
                    "integration.refresh_token",
                    "jobs.stuck_detection",
                ]),
            },
            default: QueueConfig {
                job_types: types(&["sync.process_delta", "webhook.dispatch", "email.send", "jobs.dlq_purge"]),
                ..QueueConfig::default()
            },
            bulk: QueueConfig {
                workers: 2,
                timeout_secs: 600,
                max_pending_per_org: Some(100),
                rate_limit_per_min: Some(50),
                retries: 2,
                retry_delays_secs: vec![300, 900],
                max_running_share: 0.5,
                max_running_per_org: None,
                job_types: types(&["import.batch", "report.generate", "export.full"]),
            },
        }
    }
}

/// Background job settings (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// The queues.
    pub queues: QueuesConfig,
    /// At an organization's pending cap: `reject` (429) or `warn` (accept and notify admins).
    pub limit_mode: LimitMode,
    /// How long a claimed job is leased to its worker; leases are renewed while it runs, and a
    /// job whose lease ran out (its worker died) is recovered.
    pub lease_secs: u64,
    /// How often idle workers look for due jobs (enqueues on the same node wake them at once).
    pub poll_interval_ms: u64,
    /// Most jobs one claim takes (claims are batched to save commits).
    pub claim_batch: u32,
    /// How long finished jobs wait to be recorded together in one commit.
    pub completion_flush_ms: u64,
    /// How often stuck-job detection runs.
    pub stuck_check_interval_secs: u64,
    /// Pending dead letters at or above this raise `dlq_alert`.
    pub dlq_alert_threshold: u32,
    /// Resolved or Ignored dead letters older than this are purged daily.
    pub dlq_retention_days: u32,
    /// Finished jobs (Completed, Failed, Canceled, Timed Out) older than this are purged daily,
    /// except those a dead letter still refers to.
    pub retention_days: u32,
    /// Default window of `dedup_key` when the enqueue gives none.
    pub dedup_window_secs: u64,
    /// Largest JSON `args` accepted, in bytes.
    pub max_args_bytes: usize,
    /// Webhook delivery (`webhook.dispatch`).
    pub webhook: WebhookConfig,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            queues: QueuesConfig::default(),
            limit_mode: LimitMode::Reject,
            lease_secs: 30,
            poll_interval_ms: 250,
            claim_batch: 32,
            completion_flush_ms: 5,
            stuck_check_interval_secs: 900,
            dlq_alert_threshold: 50,
            dlq_retention_days: 7,
            retention_days: 30,
            dedup_window_secs: 3600,
            max_args_bytes: 64 * 1024,
            webhook: WebhookConfig::default(),
        }
    }
}

/// Webhook delivery settings. Deliveries reach only public addresses; each organization signs
/// with its own secret (kept in the database, not in configuration).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Networks in CIDR notation (`10.1.2.0/24`, `127.0.0.1/32`, `fd00::/64`) that deliveries may
    /// reach although they are loopback, private, link-local or otherwise not public. Empty (the
    /// default): public addresses only.
    pub allow_private: Vec<String>,
}

impl WebhookConfig {
    /// The networks of `allow_private`; the error names the entry that is not a network.
    pub fn allowed_private_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.allow_private
            .iter()
            .map(|entry| {
                let net: ipnet::IpNet = entry
                    .parse()
                    .map_err(|_| format!("'{entry}' is not a network in CIDR notation such as 10.1.2.0/24"))?;
                if net.trunc() != net {
                    return Err(format!("'{entry}' has host bits set; the network is {}", net.trunc()));
                }
                Ok(net)
            })
            .collect()
    }
}

/// Realtime gateway settings (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Redis pub/sub channel every node listens on for events to deliver to its local sockets
    /// (cluster mode); the Python/Frappe side publishes here.
    #[serde(deserialize_with = "text::required")]
    pub channel: String,
    /// Prefix of the Socket.IO Redis adapter's own channels (room operations across nodes). Nodes
    /// of one cluster must share it.
    #[serde(deserialize_with = "text::required")]
    pub adapter_prefix: String,
    /// Who may join `room:{name}` rooms.
    pub custom_rooms: CustomRoomPolicy,
    /// Most rooms one socket may subscribe to (besides its own `user:` room).
    pub max_rooms_per_socket: usize,
    /// Engine.IO ping interval.
    pub ping_interval_secs: u64,
    /// Engine.IO ping timeout: a client silent this long after a ping is disconnected.
    pub ping_timeout_secs: u64,
    /// Largest payload a client may send, in bytes: an HTTP long-polling request body, or one
    /// WebSocket message (a larger message closes the connection unprocessed).
    pub max_payload_bytes: u64,
    /// Events waiting to be published by this node; beyond it new events are dropped (and counted).
    pub publish_queue: usize,
    /// How long a cross-node room operation (e.g. removing a user's sockets from rooms) waits for
    /// the other nodes.
    pub cluster_request_timeout_ms: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            channel: "dartwing:realtime".into(),
            adapter_prefix: "dartwing-socket.io".into(),
            custom_rooms: CustomRoomPolicy::Authenticated,
            max_rooms_per_socket: 500,
            ping_interval_secs: 25,
            ping_timeout_secs: 20,
            max_payload_bytes: 1024 * 1024,
            publish_queue: 65_536,
            cluster_request_timeout_ms: 2_000,
        }
    }
}

/// Who may join custom `room:{name}` rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomRoomPolicy {
    /// Any authenticated user.
    Authenticated,
    /// Platform administrators only.
    SystemAdmins,
    /// Nobody (custom rooms are refused).
    Disabled,
}

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

/// Integration token vault settings (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegrationsConfig {
    /// The current encryption key (base64 of 32 bytes); new ciphertexts use it. Also read from
    /// `DARTWING_INTEGRATION_KEY`.
    pub key: Option<Secret>,
    /// Older keys (base64) that stay readable until `dartwing keys rotate` has re-encrypted every row.
    pub previous_keys: Vec<Secret>,
    /// Key file used when `key` is unset: first line the current key, further lines older keys.
    /// Default `<data_dir>/integration-key` (generated with mode 0600 outside production mode).
    pub key_file: Option<PathBuf>,
    /// `access_token` refreshes first when the token expires within this many seconds.
    pub refresh_buffer_secs: u64,
    /// How often the proactive refresh job runs.
    pub proactive_refresh_interval_secs: u64,
    /// The proactive refresh job refreshes Connected tokens expiring within this many seconds.
    pub proactive_refresh_window_secs: u64,
    /// Time limit of each call to a provider (token exchange, refresh, revocation).
    pub http_timeout_ms: u64,
    /// How long a connect flow's `state` stays valid.
    pub state_ttl_secs: u64,
    /// Public base URL of the API (e.g. `https://api.example.com`); the OAuth redirect URI is
    /// `<public_base_url>/api/method/dartwing_core.integrations.callback`. Default `http://<listen>`.
    #[serde(deserialize_with = "text::optional")]
    pub public_base_url: Option<String>,
    /// OAuth2 providers by integration name (e.g. `Google`); see [`ProviderConfig`].
    pub providers: std::collections::BTreeMap<String, ProviderConfig>,
    /// Outgoing mail for expiry notifications.
    pub smtp: SmtpConfig,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        Self {
            key: None,
            previous_keys: Vec::new(),
            key_file: None,
            refresh_buffer_secs: 300,
            proactive_refresh_interval_secs: 300,
            proactive_refresh_window_secs: 600,
            http_timeout_ms: 10_000,
            state_ttl_secs: 600,
            public_base_url: None,
            providers: std::collections::BTreeMap::new(),
            smtp: SmtpConfig::default(),
        }
    }
}

/// One OAuth2 provider. A preset (Google, Slack, QuickBooks, Salesforce, Microsoft365, Zapier)
/// supplies the URLs and default scopes; any field given here overrides it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Preset whose URLs and scopes are the defaults; default: the provider's own name when it names a preset.
    #[serde(deserialize_with = "text::optional")]
    pub preset: Option<String>,
    /// Authorization endpoint.
    #[serde(deserialize_with = "text::optional")]
    pub auth_url: Option<String>,
    /// Token endpoint (code exchange and refresh).
    #[serde(deserialize_with = "text::optional")]
    pub token_url: Option<String>,
    /// Revocation endpoint (RFC 7009); disconnect skips revocation when unset.
    #[serde(deserialize_with = "text::optional")]
    pub revoke_url: Option<String>,
    /// OAuth2 client id.
    #[serde(deserialize_with = "text::required")]
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: Option<Secret>,
    /// Scopes requested on connect (replace the preset's).
    pub scopes: Option<Vec<String>>,
    /// Extra query parameters of the authorization URL (e.g. `access_type = "offline"`).
    pub extra_params: std::collections::BTreeMap<String, String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (local relays and tests only).
    None,
}

/// Outgoing mail settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// SMTP server host; unset = notification emails are logged as skipped.
    #[serde(deserialize_with = "text::optional")]
    pub host: Option<String>,
    /// SMTP server port.
    pub port: u16,
    /// `starttls`, `tls` or `none`.
    pub security: SmtpSecurity,
    /// Login user name; no authentication when unset.
    #[serde(deserialize_with = "text::optional")]
    pub username: Option<String>,
    /// Login password.
    pub password: Option<Secret>,
    /// Sender address of notification emails.
    #[serde(deserialize_with = "text::required")]
    pub from: String,
    /// Time limit of one SMTP delivery.
    pub timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: "Dartwing <no-reply@localhost>".into(),
            timeout_ms: 10_000,
        }
    }
}

/// A role a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// HTTP API.
    Api,
    /// Socket.IO gateway.
    Realtime,
    /// Job workers.
    Worker,
    /// Cron scheduler.
    Scheduler,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 4] = [Role::Api, Role::Realtime, Role::Worker, Role::Scheduler];

    /// The role's name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Realtime => "realtime",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
        }
    }
}

/// The set of roles a process runs; written `api,realtime,worker,scheduler` or as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// All four roles (the default).
    pub fn all() -> Self {
        Self(Role::ALL.to_vec())
    }

    /// Whether `role` is enabled.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Parses a comma-separated list such as `api,worker`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut roles = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == part)
                .ok_or_else(|| format!("unknown role '{part}' (expected api, realtime, worker or scheduler)"))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.is_empty() {
            return Err("at least one role is required".into());
        }
        Ok(Self(roles))
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.0.iter().map(|r| r.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            One(String),
            Many(Vec<String>),
        }
        let text = match Text::deserialize(deserializer)? {
            Text::One(s) => s,
            Text::Many(list) => list.join(","),
        };
        Roles::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Text values that environment variables may deliver as numbers or booleans (`DARTWING_NODE_ID=7`).
mod text {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Unsigned(u64),
        Signed(i64),
        Float(f64),
        Bool(bool),
    }

    impl Scalar {
        fn into_text(self) -> String {
            match self {
                Scalar::Text(s) => s,
                Scalar::Unsigned(n) => n.to_string(),
                Scalar::Signed(n) => n.to_string(),
                Scalar::Float(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
            }
        }
    }

    pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        Scalar::deserialize(deserializer).map(Scalar::into_text)
    }

    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        Option::<Scalar>::deserialize(deserializer).map(|v| v.map(Scalar::into_text))
    }
}

/// A configuration value that is well-typed but unusable; names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    /// Dotted key, e.g. `database.max_connections`.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration key `{}`: {}", self.key, self.reason)
    }
}

impl std::error::Error for InvalidConfig {}

impl Config {
    /// Checks the values that types alone cannot; the error names the offending key.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let fail = |key, reason: &str| {
            Err(InvalidConfig {
                key,
                reason: reason.to_string(),
            })
        };
        if let Some(url) = self.database_url.as_ref().map(Secret::expose)
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return fail("database_url", "must start with sqlite:, postgres:// or postgresql://");
        }
        if let Some(url) = self.redis_url.as_ref().map(Secret::expose)
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return fail("redis_url", "must start with redis:// or rediss://");
        }
        if self.realtime.max_rooms_per_socket == 0 {
            return fail("realtime.max_rooms_per_socket", "must be at least 1");
        }
        if self.realtime.max_payload_bytes < 1024 {
            return fail("realtime.max_payload_bytes", "must be at least 1024");
        }
        if self.realtime.publish_queue == 0 {
            return fail("realtime.publish_queue", "must be at least 1");
        }
        if self.realtime.ping_interval_secs == 0 || self.realtime.ping_timeout_secs == 0 {
            return fail(
                "realtime.ping_interval_secs",
                "ping interval and timeout must be at least 1 s",
            );
        }
        if let Some(node_id) = &self.node_id
            && (node_id.is_empty() || node_id.len() > 128 || node_id.chars().any(char::is_control))
        {
            return fail("node_id", "must be 1-128 printable characters");
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < 32
        {
            return fail("jwt_secret", "must be at least 32 characters");
        }
        if self.production && self.jwt_secret.is_none() && self.auth.jwks_url.is_none() {
            return fail("jwt_secret", "production mode needs jwt_secret or auth.jwks_url");
        }
        if self.production && self.observability.metrics_token.is_none() && self.observability.metrics_listen.is_none()
        {
            return fail(
                "observability.metrics_token",
                "production mode needs a metrics token (or observability.metrics_listen, a private listener for /metrics)",
            );
        }
        if self
            .observability
            .metrics_listen
            .is_some_and(|metrics| metrics == self.listen && metrics.port() != 0)
        {
            return fail("observability.metrics_listen", "must differ from listen");
        }
        if let Some(url) = &self.auth.jwks_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return fail("auth.jwks_url", "must be an http:// or https:// URL");
        }
        if self.auth.user_claim.is_empty() {
            return fail("auth.user_claim", "must not be empty");
        }
        if self.database.max_connections == 0 {
            return fail("database.max_connections", "must be at least 1");
        }
        if self.database.min_connections > self.database.max_connections {
            return fail("database.min_connections", "must not exceed database.max_connections");
        }
        if self.http.body_limit_bytes < 1024 {
            return fail("http.body_limit_bytes", "must be at least 1024");
        }
        if self.http.header_read_timeout_secs == 0 {
            return fail("http.header_read_timeout_secs", "must be at least 1");
        }
        if self.http.body_timeout_secs == 0 {
            return fail("http.body_timeout_secs", "must be at least 1");
        }
        if self.http.max_connections == 0 {
            return fail("http.max_connections", "must be at least 1");
        }
        for (key, queue) in [
            ("jobs.queues.critical", &self.jobs.queues.critical),
            ("jobs.queues.default", &self.jobs.queues.default),
            ("jobs.queues.bulk", &self.jobs.queues.bulk),
        ] {
            if queue.workers == 0 || queue.timeout_secs == 0 {
                return Err(InvalidConfig {
                    key,
                    reason: "workers and timeout_secs must be at least 1".into(),
                });
            }
            if queue.retries > 0 && queue.retry_delays_secs.is_empty() {
                return Err(InvalidConfig {
                    key,
                    reason: "retry_delays_secs must list at least one delay".into(),
                });
            }
            if !(queue.max_running_share > 0.0 && queue.max_running_share <= 1.0) {
                return Err(InvalidConfig {
                    key,
                    reason: "max_running_share must be a fraction greater than 0 and at most 1".into(),
                });
            }
            if queue.max_running_per_org == Some(0) {
                return Err(InvalidConfig {
                    key,
                    reason: "max_running_per_org must be at least 1".into(),
                });
            }
        }
        if self.jobs.retention_days == 0 {
            return fail("jobs.retention_days", "must be at least 1");
        }
        if self.jobs.lease_secs < 2 {
            return fail("jobs.lease_secs", "must be at least 2");
        }
        if self.jobs.claim_batch == 0 {
            return fail("jobs.claim_batch", "must be at least 1");
        }
        if let Err(reason) = self.jobs.webhook.allowed_private_networks() {
            return fail("jobs.webhook.allow_private", &reason);
        }
        if self.sync.max_document_bytes < 64 {
            return fail("sync.max_document_bytes", "must be at least 64");
        }
        if self.sync.max_batch_items == 0 {
            return fail("sync.max_batch_items", "must be at least 1");
        }
        if self.sync.feed_limit_max == 0 || self.sync.feed_limit_default == 0 {
            return fail("sync.feed_limit_max", "feed limits must be at least 1");
        }
        if self.sync.feed_limit_default > self.sync.feed_limit_max {
            return fail("sync.feed_limit_default", "must not exceed sync.feed_limit_max");
        }
        if let Some(url) = &self.sync.merge_hook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return fail("sync.merge_hook_url", "must be an http:// or https:// URL");
        }
        let mut seen = std::collections::HashSet::new();
        for entry in &self.sync.strategies {
            if entry.doctype.is_empty() || !seen.insert(entry.doctype.as_str()) {
                return fail("sync.strategies", "each entry needs a distinct, non-empty doctype");
            }
        }
        let integrations = &self.integrations;
        if integrations.refresh_buffer_secs == 0 {
            return fail("integrations.refresh_buffer_secs", "must be at least 1");
        }
        if integrations.proactive_refresh_interval_secs == 0 {
            return fail("integrations.proactive_refresh_interval_secs", "must be at least 1");
        }
        if integrations.proactive_refresh_window_secs < integrations.proactive_refresh_interval_secs {
            return fail(
                "integrations.proactive_refresh_window_secs",
                "must be at least integrations.proactive_refresh_interval_secs",
            );
        }
        if integrations.http_timeout_ms == 0 || integrations.state_ttl_secs == 0 {
            return fail(
                "integrations.http_timeout_ms",
                "http_timeout_ms and state_ttl_secs must be at least 1",
            );
        }
        if let Some(url) = &integrations.public_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return fail("integrations.public_base_url", "must be an http:// or https:// URL");
        }
        for (name, provider) in &integrations.providers {
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return fail(
                    "integrations.providers",
                    "provider names must be 1-64 letters, digits, '_' or '-'",
                );
            }
            if provider.client_id.is_empty() {
                return fail("integrations.providers.client_id", "must not be empty");
            }
            for url in [&provider.auth_url, &provider.token_url, &provider.revoke_url]
                .into_iter()
                .flatten()
            {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return fail(
                        "integrations.providers",
                        "auth_url, token_url and revoke_url must be http(s) URLs",
                    );
                }
            }
        }
        if self.observability.max_org_label_values == 0 {
            return fail("observability.max_org_label_values", "must be at least 1");
        }
        Ok(())
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

    #[test]
    fn an_organization_may_hold_half_of_a_queues_slots_by_default() {
        let queues = QueuesConfig::default();
        assert_eq!(queues.default.running_share_slots(), 4);
        assert_eq!(queues.critical.running_share_slots(), 2);
        assert_eq!(queues.bulk.running_share_slots(), 1);
        let queue = |workers, share, absolute| QueueConfig {
            workers,
            max_running_share: share,
            max_running_per_org: absolute,
            ..QueueConfig::default()
        };
        assert_eq!(queue(3, 0.5, None).running_share_slots(), 1, "rounded down");
        assert_eq!(queue(1, 0.1, None).running_share_slots(), 1, "at least one slot");
        assert_eq!(queue(8, 1.0, None).running_share_slots(), 8, "no limit");
        assert_eq!(queue(8, 0.5, Some(6)).running_share_slots(), 6, "absolute wins");
        assert_eq!(queue(8, 0.5, Some(20)).running_share_slots(), 8, "at most every slot");
        for (share, absolute) in [(0.0, None), (1.5, None), (f64::NAN, None), (0.5, Some(0))] {
            let mut config = Config::default();
            config.jobs.queues.bulk = queue(2, share, absolute);
            assert_eq!(
                config.validate().map_err(|e| e.key),
                Err("jobs.queues.bulk"),
                "{share} {absolute:?}"
            );
        }
        let mut config = Config::default();
        config.jobs.retention_days = 0;
        assert_eq!(config.validate().map_err(|e| e.key), Err("jobs.retention_days"));
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
        assert_eq!(config.validate().map_err(|e| e.key), Err("database.max_connections"));
        let config = Config {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert_eq!(config.validate().map_err(|e| e.key), Err("database_url"));
    }

    #[test]
    fn webhook_private_allowlist_takes_networks_only() {
        let mut config = Config::default();
        config.jobs.webhook.allow_private = vec!["10.1.2.0/24".into(), "127.0.0.1/32".into(), "fd00::/64".into()];
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.jobs.webhook.allowed_private_networks().map(|n| n.len()), Ok(3));
        for bad in ["10.1.2.0", "10.1.2.5/24", "localhost/8", "10.0.0.0/33", ""] {
            config.jobs.webhook.allow_private = vec![bad.into()];
            let error = config.validate().expect_err(bad);
            assert_eq!(error.key, "jobs.webhook.allow_private", "{bad}");
        }
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
