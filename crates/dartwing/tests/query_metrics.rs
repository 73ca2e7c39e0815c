//! Every statement the stores run is counted in `db_queries_total`: a scenario through every
//! capability runs, and the counter's growth equals the number of statements the database driver
//! executed (as sqlx reports each one on its `sqlx::query` log target). Transaction control and
//! connection setup are not statements of a store and are left out of both sides.
//!
//! One test binary of its own: it installs the process-wide log subscriber that counts statements.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::config::Roles;
use dartwing_e2e::scenario::{ALICE, Scene};
use dartwing_e2e::{TestDatabase, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Statements sqlx reported, by every connection of the process.
static EXECUTED: AtomicU64 = AtomicU64::new(0);

/// Counts `sqlx::query` events whose statement belongs to a store.
struct StatementCounter;

struct Summary(Option<String>);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut summary = Summary(None);
        event.record(&mut summary);
        let summary = summary.0.unwrap_or_default().to_ascii_lowercase();
        let control = ["begin", "commit", "rollback", "savepoint", "release", "pragma", "set "]
            .iter()
            .any(|word| summary.starts_with(word));
        if !control {
            EXECUTED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `db_queries_total` summed over every series except transaction control.
fn counted(server: &TestServer) -> u64 {
    server
        .app
        .metrics
        .render()
        .lines()
        .filter(|line| line.starts_with("db_queries_total{") && !line.contains("doctype=\"Transaction\""))
        .filter_map(|line| line.rsplit_once(' ').and_then(|(_, value)| value.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// Both counts at one quiet moment (a background sampler may be mid-query: read until stable).
async fn both(server: &TestServer) -> (u64, u64) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let executed = EXECUTED.load(Ordering::SeqCst);
        let counted = counted(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if EXECUTED.load(Ordering::SeqCst) == executed && counted == self::counted(server) {
            return (executed, counted);
        }
    }
}

/// Requests through every capability's store: tenancy, jobs, sync, the vault, realtime publishing.
async fn through_every_capability(scene: &Scene) {
    let server = &scene.server;
    let alice = server.token(ALICE);
    let ok = |reply: dartwing_e2e::Reply| {
        assert!(reply.status.is_success(), "{} {}", reply.status, reply.text);
        reply
    };
    server.add_member(&scene.alpha, "carol@example.com", "Member").await;
    ok(server.get("/api/resource/Org%20Member?fields=[\"*\"]", &alice).await);
    ok(server
        .get(&format!("/api/resource/Organization/{}", scene.alpha), &alice)
        .await);
    ok(server
        .get("/api/resource/Person?fields=[\"name\",\"full_name\"]", &alice)
        .await);
    ok(server
        .put(
            &format!("/api/resource/Organization/{}", scene.alpha),
            &alice,
            &json!({"org_name": "Alpha Ltd"}),
        )
        .await);
    let enqueued = ok(server
        .post(
            "/api/method/dartwing_core.jobs.enqueue",
            &alice,
            &json!({"method": "core.noop", "organization": scene.alpha, "args": {}}),
        )
        .await)
    .json();
    let job_id = enqueued["message"]["job_id"].as_str().unwrap().to_string();
    ok(server
        .get(
            &format!("/api/method/dartwing_core.jobs.status?job_id={job_id}"),
            &alice,
        )
        .await);
    ok(server
        .get(
            &format!("/api/method/dartwing_core.jobs.list?organization={}", scene.alpha),
            &alice,
        )
        .await);
    ok(server
        .post(
            "/api/method/dartwing_core.jobs.cancel",
            &alice,
            &json!({"job_id": job_id}),
        )
        .await);
    ok(server
        .get(
            &format!(
                "/api/method/dartwing_core.jobs.dead_letters?organization={}",
                scene.alpha
            ),
            &alice,
        )
        .await);
    ok(server
        .get(
            &format!(
                "/api/method/dartwing_core.jobs.webhook_secret?organization={}",
                scene.alpha
            ),
            &alice,
        )
        .await);
    let items: Vec<_> = (0..5)
        .map(|i| {
            json!({"op_id": format!("op-{i}"), "doctype": "Task", "name": format!("T-{i}"), "op": "insert",
                   "data": {"title": format!("task {i}")}, "client_ts": "2026-11-28T10:00:00.000000Z"})
        })
        .collect();
    ok(server
        .post(
            "/api/method/dartwing_core.sync.upsert_batch",
            &alice,
            &json!({"org": scene.alpha, "items": items}),
        )
        .await);
    ok(server
        .get(
            &format!(
                "/api/method/dartwing_core.sync.feed?org={}&doctype=Task&limit=3",
                scene.alpha
            ),
            &alice,
        )
        .await);
    ok(server
        .get(
            &format!("/api/method/dartwing_core.sync.conflicts?org={}", scene.alpha),
            &alice,
        )
        .await);
    ok(server
        .get(
            &format!(
                "/api/method/dartwing_core.integrations.status?organization={}",
                scene.alpha
            ),
            &alice,
        )
        .await);
    let refused = server
        .get(
            &format!("/api/resource/Organization/{}", scene.beta),
            &server.token("eve@example.com"),
        )
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.text);
    assert_eq!(
        server.get("/health", &alice).await.status,
        StatusCode::OK,
        "the database check is a statement too"
    );
}

/// The statement counter is process-wide: scenarios run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn count_statements() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::Targets::new().with_target("sqlx::query", tracing::Level::TRACE))
            .with(StatementCounter);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
    });
}

/// A scenario through every capability: `db_queries_total` grows by exactly the number of
/// statements the driver ran.
async fn every_statement_is_counted_in_db_queries_total(db: &TestDatabase) {
    count_statements();
    let _serial = ONE_AT_A_TIME.lock().await;
    // Serving only the API keeps workers and the scheduler from querying on their own.
    let server = TestServer::start_with(db, |config| config.roles = Roles::parse("api").unwrap()).await;
    let scene = Scene::on(server).await;
    let (executed_before, counted_before) = both(&scene.server).await;
    through_every_capability(&scene).await;
    let (executed_after, counted_after) = both(&scene.server).await;
    let executed = executed_after - executed_before;
    let counted = counted_after - counted_before;
    assert!(executed > 30, "the scenario ran only {executed} statements");
    assert_eq!(
        counted, executed,
        "db_queries_total grew by {counted} while the driver ran {executed} statements"
    );
    scene.stop().await;
}

#[tokio::test]
async fn every_statement_is_counted_on_sqlite() {
    every_statement_is_counted_in_db_queries_total(&TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn every_statement_is_counted_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        every_statement_is_counted_in_db_queries_total(&db).await;
    }
}
