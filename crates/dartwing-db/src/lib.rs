//! Database plumbing for SQLite (embedded default) and PostgreSQL (cluster): one pool type over
//! both through sqlx's `Any` driver, one set of portable migrations, a transaction helper, error mapping,
//! query metrics and the database health check.
//!
//! SQL shared by both backends uses `$1`-style parameters, which SQLite also accepts; where the
//! dialects differ, code branches on [`Backend`].

mod error;
pub mod notify;
pub mod sql;
pub mod types;

pub use error::{DbError, describe};
pub use sql::{SqlFile, Statement, Statements};
pub use sqlx;
pub use types::{JsonText, Micros};

use dartwing_core::config::DatabaseConfig;
use dartwing_observe::{HealthCheck, Metrics};
use futures::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Connection as _, Executor, Transaction};
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a URL selects.
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl)
        }
    }

    /// Short name for logs and health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The migrations of one capability: portable ones (the SQL both backends accept) and, where the
/// dialects differ, one set per backend. Versions are unique across capabilities; the node runs
/// every capability's migrations together, in version order. Declare them with [`migrations!`].
#[derive(Debug)]
pub struct Migrations {
    /// The capability, for error messages.
    pub capability: &'static str,
    /// Migrations for both backends.
    pub portable: &'static sqlx::migrate::Migrator,
    /// SQLite-only migrations.
    pub sqlite: &'static sqlx::migrate::Migrator,
    /// PostgreSQL-only migrations.
    pub postgres: &'static sqlx::migrate::Migrator,
}

/// Declares a crate's [`Migrations`] from its `migrations/{portable,sqlite,postgres}` directories.
#[macro_export]
macro_rules! migrations {
    ($capability:literal) => {
        $crate::Migrations {
            capability: $capability,
            portable: &$crate::sqlx::migrate!("./migrations/portable"),
            sqlite: &$crate::sqlx::migrate!("./migrations/sqlite"),
            postgres: &$crate::sqlx::migrate!("./migrations/postgres"),
        }
    };
}

/// Every migration of `sets` for `backend`, in version order.
#[derive(Debug)]
struct Combined(Vec<sqlx::migrate::Migration>);

impl<'s> sqlx::migrate::MigrationSource<'s> for Combined {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// Creates `dir` and its missing parents readable by the owner only (0700 on Unix).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A pooled connection idle for this long is pinged before it is used again; one used more recently
/// is handed out without that extra round trip.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// A connection pool to the runtime's database, with query metrics.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The URL the pool connects to (for connections of their own, e.g. a notification listener).
    url: Arc<str>,
    metrics: Option<Arc<Metrics>>,
    slow_query: Duration,
}

impl Db {
    /// The URL of the embedded database in `data_dir` (created on connect).
    pub fn sqlite_url_in(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("dartwing.db").display())
    }

    /// Opens a pool. For SQLite the parent directory is created (owner-only, 0700, when new),
    /// and every connection uses WAL, a busy timeout and foreign keys.
    pub async fn connect(url: &str, config: &DatabaseConfig, metrics: Option<Arc<Metrics>>) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        if backend == Backend::Sqlite
            && let Some(parent) = sqlite_path(url).and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
            && !parent.as_os_str().is_empty()
        {
            create_private_dir(&parent).map_err(|e| DbError::DataDir(parent.display().to_string(), e))?;
        }
        let options = AnyConnectOptions::from_str(url).map_err(DbError::Connect)?;
        let busy_timeout_ms = config.sqlite_busy_timeout_ms;
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            // A connection in steady use is handed out as it is; one idle for a while is checked
            // first (a round trip), so one broken meanwhile (a database restart) is replaced.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute(format!("PRAGMA busy_timeout = {busy_timeout_ms}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(DbError::Connect)?;
        let db = Self {
            pool,
            backend,
            url: Arc::from(url),
            metrics,
            slow_query: Duration::from_millis(config.slow_query_ms),
        };
        if let Some(metrics) = &db.metrics {
            metrics.db.pool_size.set(i64::from(config.max_connections));
            let pool = db.pool.clone();
            let active = metrics.db.connections_active.clone();
            metrics.on_scrape(Box::new(move || {
                let in_use = pool
                    .size()
                    .saturating_sub(u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
                active.set(i64::from(in_use));
            }));
        }
        Ok(db)
    }

    /// Applies the pending migrations of every set, for this backend, in version order
    /// (PostgreSQL serializes concurrent migrators with an advisory lock, so several nodes may
    /// start at once). Two sets may not use the same version.
    pub async fn migrate(&self, sets: &[&Migrations]) -> Result<(), DbError> {
        let mut all: Vec<sqlx::migrate::Migration> = Vec::new();
        for set in sets {
            let own = match self.backend {
                Backend::Sqlite => set.sqlite,
                Backend::Postgres => set.postgres,
            };
            for migration in set.portable.iter().chain(own.iter()) {
                if all.iter().any(|m| m.version == migration.version) {
                    return Err(DbError::Statement(format!(
                        "migration version {} of {} is used twice",
                        migration.version, set.capability
                    )));
                }
                all.push(migration.clone());
            }
        }
        all.sort_by_key(|m| m.version);
        let migrator = sqlx::migrate::Migrator::new(Combined(all))
            .await
            .map_err(DbError::Migrate)?;
        migrator.run(&self.pool).await.map_err(DbError::Migrate)
    }

    /// Runs `statement`'s query future (built with [`Statement::query`] and friends on any
    /// executor), counting it in `db_queries_total`/`db_query_duration_seconds` (and slow ones)
    /// under the statement's doctype and name. A failure names the statement and keeps the cause.
    pub async fn run<T, Fut>(&self, statement: &Statement, query: Fut) -> Result<T, DbError>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.observe(statement.doctype, statement.name, query)
            .await
            .map_err(|source| DbError::Query {
                statement: format!("{}.{}", statement.doctype, statement.name),
                source,
            })
    }

    /// [`Db::run`] for SQL that a query builder assembled from catalogued identifiers (Frappe-style
    /// list queries), counted under `doctype`/`operation`. Values are always bound, never written
    /// into the SQL.
    pub async fn run_built<T, Fut>(
        &self,
        doctype: &'static str,
        operation: &'static str,
        query: Fut,
    ) -> Result<T, DbError>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.observe(doctype, operation, query)
            .await
            .map_err(|source| DbError::Query {
                statement: format!("{doctype}.{operation}"),
                source,
            })
    }

    /// Begins a write transaction, counted as `Transaction`/`begin` (`BEGIN IMMEDIATE` on SQLite
    /// so that writers queue on the busy timeout instead of failing when a read lock would need
    /// upgrading).
    pub async fn begin_tx(&self) -> Result<Transaction<'static, Any>, DbError> {
        self.observe("Transaction", "begin", self.begin())
            .await
            .map_err(DbError::Transaction)
    }

    /// Commits `tx`, counted as `Transaction`/`commit`.
    pub async fn commit(&self, tx: Transaction<'static, Any>) -> Result<(), DbError> {
        self.observe("Transaction", "commit", tx.commit())
            .await
            .map_err(DbError::Transaction)
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite so that writers queue on the
    /// busy timeout instead of failing when a read lock would need upgrading).
    async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Runs a query future, recording `db_queries_total`, `db_query_duration_seconds` and slow
    /// queries under `doctype`/`operation`.
    async fn observe<T, Fut>(&self, doctype: &str, operation: &str, query: Fut) -> Result<T, sqlx::Error>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let Some(metrics) = self.metrics.as_ref().filter(|m| m.enabled()) else {
            return query.await;
        };
        let started = Instant::now();
        let result = query.await;
        let elapsed = started.elapsed();
        let labels = [doctype, operation];
        metrics.db.queries_total.with_label_values(&labels).inc();
        metrics
            .db
            .query_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        if elapsed >= self.slow_query {
            metrics.db.slow_queries_total.with_label_values(&labels).inc();
            tracing::warn!(
                doctype,
                operation,
                duration_ms = elapsed.as_millis() as u64,
                "slow query"
            );
        }
        result
    }

    /// A health check that runs `SELECT 1`.
    pub fn health_check(&self) -> Arc<dyn HealthCheck> {
        Arc::new(DatabaseCheck(self.clone()))
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

struct DatabaseCheck(Db);

#[async_trait::async_trait]
impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<String, String> {
        self.0
            .observe("Database", "ping", sqlx::query("SELECT 1").execute(&self.0.pool))
            .await
            .map(|_| format!("{} reachable", self.0.backend.as_str()))
            .map_err(|e| format!("{} unreachable: {}", self.0.backend.as_str(), error::describe(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(sqlite_path("sqlite://./data/x.db?mode=rwc"), Some("./data/x.db"));
        assert_eq!(sqlite_path("sqlite:x.db"), Some("x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert!(Backend::of_url("mysql://x").is_err());
    }
}
