//! Scenario helpers shared by the suites: one test per backend, refusal assertions, and a
//! snapshot of the whole database for "nothing changed" checks.

use crate::{Reply, TEST_JWT_SECRET, TestServer};
use dartwing_db::Backend;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use sqlx::Row;

/// Emits each scenario as a module with one test per backend, `<name>::sqlite` and
/// `<name>::postgres`, so a failure names its backend and the PostgreSQL run happens even when
/// the SQLite one fails. The PostgreSQL test fails in CI when the database is missing, and
/// prints why it skipped elsewhere.
///
/// A scenario that needs another runtime names the `#[tokio::test]` arguments after its
/// parameter list: `async fn many_callers(db) runtime(flavor = "multi_thread", worker_threads = 4) { … }`.
///
/// ```ignore
/// dartwing_e2e::backend_tests! {
///     /// A Member cannot do X.
///     async fn member_cannot_do_x(db) {
///         let server = TestServer::start(db).await;
///         // …
///     }
/// }
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($db:ident) $(runtime($($runtime:tt)*))? $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn scenario($db: &$crate::TestDatabase) $body

                #[tokio::test($($($runtime)*)?)]
                async fn sqlite() {
                    scenario(&$crate::TestDatabase::sqlite()).await;
                }

                #[tokio::test($($($runtime)*)?)]
                async fn postgres() {
                    if let Some(db) = $crate::TestDatabase::postgres().await {
                        scenario(&db).await;
                    }
                }
            }
        )*
    };
}

/// Asserts an error reply: its status, a JSON `{"exc_type", "message"}` body with the expected
/// `exc_type`, and nothing in it that must stay private (see [`assert_private`]).
pub fn assert_refused(reply: &Reply, status: StatusCode, exc_type: &str, private: &[&str]) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let content_type = reply
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error body is not JSON ({content_type}): {}",
        reply.text
    );
    let body = reply.json();
    assert_eq!(body["exc_type"], exc_type, "{}", reply.text);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {}",
        reply.text
    );
    assert_private(&reply.text, private);
}

/// Asserts that `text` (a response body or log) holds neither the test JWT secret, nor any of
/// `private` (API secrets, tokens sent), nor internals (panic messages, backtraces, source paths).
pub fn assert_private(text: &str, private: &[&str]) {
    assert!(!text.contains(TEST_JWT_SECRET), "JWT secret leaked: {text}");
    for value in private.iter().filter(|v| !v.is_empty()) {
        assert!(!text.contains(value), "private value {value:?} leaked: {text}");
    }
    let lower = text.to_lowercase();
    for word in ["panicked", "backtrace", "src/", ".rs:", "thread '"] {
        assert!(!lower.contains(word), "{word:?} in a response body: {text}");
    }
}

/// Tables whose rows change on their own while a node runs (heartbeats, cron bookkeeping, the
/// queues' virtual clocks, migrations); a snapshot leaves them out.
const VOLATILE_TABLES: [&str; 5] = [
    "worker_heartbeat",
    "job_worker_heartbeat",
    "cron_tick",
    "job_queue_clock",
    "_sqlx_migrations",
];

/// Tables whose system rows (no organization) the scheduler writes on its own; a snapshot keeps
/// only their organizations' rows.
const SYSTEM_ROWS_SKIPPED: [&str; 2] = ["job", "job_lane"];

/// Every row of every table of a test database, each row as JSON text, sorted — for asserting
/// that a refused request changed nothing anywhere. System jobs (no organization), which the
/// scheduler enqueues on its own, are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSnapshot(pub Vec<(String, Vec<String>)>);

impl DbSnapshot {
    /// Reads the database of `server`.
    pub async fn take(server: &TestServer) -> Self {
        let pool = server.app.db.pool();
        let backend = server.app.db.backend();
        let tables_sql = match backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
            }
        };
        let tables: Vec<String> = sqlx::query(tables_sql)
            .fetch_all(pool)
            .await
            .expect("list tables")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .filter(|name| !VOLATILE_TABLES.contains(&name.as_str()))
            .collect();
        assert!(!tables.is_empty(), "the snapshot sees no tables");
        let mut out = Vec::new();
        for table in tables {
            let filter = if SYSTEM_ROWS_SKIPPED.contains(&table.as_str()) {
                " WHERE org_key <> ''"
            } else {
                ""
            };
            let sql = match backend {
                Backend::Sqlite => {
                    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(pool)
                        .await
                        .expect("table columns")
                        .iter()
                        .map(|row| format!("\"{}\"", row.get::<String, _>(0)))
                        .collect();
                    format!("SELECT json_array({}) FROM \"{table}\"{filter}", columns.join(", "))
                }
                Backend::Postgres => format!("SELECT CAST(row_to_json(t) AS TEXT) FROM \"{table}\" t{filter}"),
            };
            let mut rows: Vec<String> = sqlx::query(&sql)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("snapshot of {table}: {e}"))
                .iter()
                .map(|row| row.get::<String, _>(0))
                .collect();
            rows.sort();
            out.push((table, rows));
        }
        Self(out)
    }

    /// The rows of `table`.
    pub fn rows(&self, table: &str) -> &[String] {
        self.0
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, rows)| rows.as_slice())
            .unwrap_or_else(|| panic!("no table {table} in the snapshot"))
    }

    /// Asserts that nothing changed since `self`, naming the tables that did.
    pub async fn assert_unchanged(&self, server: &TestServer, what: &str) {
        let now = Self::take(server).await;
        let changed: Vec<String> = self
            .0
            .iter()
            .zip(&now.0)
            .filter(|(before, after)| before != after)
            .map(|((table, before), (_, after))| {
                let added: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
                let removed: Vec<&String> = before.iter().filter(|r| !after.contains(r)).collect();
                format!("{table}: added {added:?}, removed {removed:?}")
            })
            .collect();
        assert_eq!(self.0.len(), now.0.len(), "{what}: tables appeared or vanished");
        assert!(
            changed.is_empty(),
            "{what} changed the database:\n{}",
            changed.join("\n")
        );
    }
}

/// Owner of the organization "Alpha" in a [`Scene`].
pub const ALICE: &str = "alice@example.com";
/// Owner of the organization "Beta" in a [`Scene`].
pub const BOB: &str = "bob@example.com";
/// The platform administrator of a [`Scene`] (also the one the harness's `add_member` acts as).
pub const ADMIN: &str = "root@example.com";

/// A running server with two organizations, Alpha (owned by [`ALICE`]) and Beta (owned by
/// [`BOB`]), and an administrator who has already been provisioned, so later snapshots see only
/// the effects of the request under test.
pub struct Scene {
    /// The node.
    pub server: TestServer,
    /// A platform administrator's token.
    pub admin: String,
    /// Alpha's name.
    pub alpha: String,
    /// Beta's name.
    pub beta: String,
}

impl Scene {
    /// A scene on a fresh node on `db`.
    pub async fn new(db: &crate::TestDatabase) -> Self {
        Self::on(TestServer::start(db).await).await
    }

    /// A scene on a running node.
    pub async fn on(server: TestServer) -> Self {
        let alpha = server.create_org(ALICE, "Alpha").await;
        let beta = server.create_org(BOB, "Beta").await;
        let admin = server.admin_token(ADMIN);
        let reply = server.get("/api/resource/Organization", &admin).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        Self {
            server,
            admin,
            alpha,
            beta,
        }
    }

    /// A user token for `email`.
    pub fn token(&self, email: &str) -> String {
        self.server.token(email)
    }

    /// A document as the administrator reads it through the API.
    pub async fn read(&self, doctype: &str, name: &str) -> serde_json::Value {
        let reply = self
            .server
            .get(&format!("/api/resource/{doctype}/{name}"), &self.admin)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["data"].clone()
    }

    /// The Org Member name of `email` in `org`.
    pub async fn membership(&self, org: &str, email: &str) -> String {
        let person = self
            .server
            .app
            .tenancy
            .person_by_email(email)
            .await
            .expect("person lookup")
            .expect("provisioned")
            .name;
        let filters = serde_json::json!([["organization", "=", org], ["person", "=", person]]).to_string();
        let reply = self
            .server
            .get(
                &format!("/api/resource/Org%20Member?filters={}", urlencoding::encode(&filters)),
                &self.admin,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["data"][0]["name"]
            .as_str()
            .expect("membership")
            .to_string()
    }

    /// Every row of the database now.
    pub async fn snapshot(&self) -> DbSnapshot {
        let snapshot = DbSnapshot::take(&self.server).await;
        assert!(
            snapshot.rows("organization").len() >= 2,
            "the snapshot does not see the scene's organizations"
        );
        snapshot
    }

    /// Stops the node.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
