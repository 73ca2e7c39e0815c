//! Jobs across real `dartwing` processes (SPEC §8): a worker killed with SIGKILL mid-job loses no
//! job, and cron ticks run once however many scheduler processes there are.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::process::{ChildGuard, serve_node, spawn_node, wait_healthy};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_dartwing");
const SECRET: &str = "crash-test-secret-0123456789abcdef0123456789";

fn node(dir: &Path, database_url: &str, args: &[&str]) -> Command {
    let mut command = dartwing_e2e::isolated_command(BINARY, dir);
    command
        .env("DARTWING_DATABASE_URL", database_url)
        .env("DARTWING_JWT_SECRET", SECRET)
        .env("DARTWING_JOBS__LEASE_SECS", "2")
        .env("DARTWING_JOBS__STUCK_CHECK_INTERVAL_SECS", "1")
        .env("DARTWING_JOBS__POLL_INTERVAL_MS", "50")
        .args(args);
    command
}

/// A server process (killed if the test fails before stopping it) and its base URL.
async fn serve(dir: &Path, database_url: &str, node_id: &str, roles: &str) -> (ChildGuard, String) {
    serve_node(&mut node(dir, database_url, &[]), node_id, roles).await
}

/// The `Authorization` value of a new system API key, created with the CLI.
fn system_key(dir: &Path, database_url: &str, description: &str) -> String {
    let created = node(dir, database_url, &["apikey", "create", "--description", description])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key: Value = serde_json::from_slice(&created.stdout).unwrap();
    format!(
        "token {}:{}",
        key["api_key"].as_str().unwrap(),
        key["api_secret"].as_str().unwrap()
    )
}

/// Enqueues a system `core.sleep` job of `ms` through `base`; its id.
async fn enqueue_sleep(client: &reqwest::Client, base: &str, key: &str, ms: u64) -> String {
    let enqueued: Value = client
        .post(format!("{base}/api/method/dartwing_core.jobs.enqueue"))
        .header("authorization", key)
        .json(&json!({"method": "core.sleep", "organization": null, "args": {"ms": ms}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    enqueued["message"]["job_id"].as_str().expect("enqueued").to_string()
}

async fn status(client: &reqwest::Client, base: &str, key: &str, job_id: &str) -> Value {
    let reply: Value = client
        .get(format!("{base}/api/method/dartwing_core.jobs.status?job_id={job_id}"))
        .header("authorization", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["message"].clone()
}

async fn wait_status(client: &reqwest::Client, base: &str, key: &str, job_id: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let current = status(client, base, key, job_id).await;
        if current["status"] == wanted {
            return current;
        }
        assert!(Instant::now() < deadline, "job stayed {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

dartwing_e2e::backend_tests! {
    async fn a_job_of_a_killed_worker_completes_exactly_once_on_another_node(db) {
        let dir = db.dir.path();
        let key = system_key(dir, &db.url, "crash test");
        let client = reqwest::Client::new();

        let (doomed, base) = serve(dir, &db.url, "doomed", "api,worker").await;
        let job_id = enqueue_sleep(&client, &base, &key, 3000).await;
        wait_status(&client, &base, &key, &job_id, "Running").await;
        doomed.signal("KILL");
        doomed.wait();

        let (survivor, base) = serve(dir, &db.url, "survivor", "api,worker,scheduler").await;
        let done = wait_status(&client, &base, &key, &job_id, "Completed").await;
        assert_eq!(done["attempts"], 2, "the killed attempt and the recovered one: {done}");
        let letters: Value = client
            .get(format!("{base}/api/method/dartwing_core.jobs.dead_letters"))
            .header("authorization", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(letters["message"], json!([]));
        // Completed stays completed: nothing runs it a third time.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let later = status(&client, &base, &key, &job_id).await;
        assert_eq!(later["attempts"], 2);
        assert_eq!(later["finished_at"], done["finished_at"]);
        survivor.signal("TERM");
        assert!(survivor.wait().success());
    }

    async fn cron_ticks_run_once_with_three_scheduler_processes(db) {
        let dir = db.dir.path();
        let migrate = node(dir, &db.url, &["migrate"]).output().unwrap();
        assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
        // All three start and stop together, so the ticks counted are those of one window.
        let nodes: Vec<_> = ["s1", "s2", "s3"]
            .into_iter()
            .map(|name| spawn_node(&mut node(dir, &db.url, &[]), name, "scheduler"))
            .collect();
        for (_, base) in &nodes {
            wait_healthy(base, Duration::from_secs(30), base).await;
        }
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        for (node, _) in &nodes {
            node.signal("TERM");
        }
        for (node, _) in nodes {
            assert!(node.wait().success());
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM job WHERE method = 'jobs.stuck_detection'")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (ticks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cron_tick WHERE name = 'jobs.stuck_detection'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            (3..=5).contains(&jobs),
            "one job per one-second tick, not one per process: {jobs}"
        );
        assert_eq!(jobs, ticks);
        pool.close().await;
    }
}

/// On PostgreSQL a job enqueued through one process starts on another process's idle worker as
/// soon as the enqueue's `NOTIFY` arrives, not at that worker's next poll (set to two minutes here).
#[tokio::test]
async fn a_job_enqueued_on_one_node_wakes_an_idle_worker_on_another() {
    let Some(db) = dartwing_e2e::TestDatabase::postgres().await else {
        return;
    };
    let dir = db.dir.path();
    let key = system_key(dir, &db.url, "wake-up test");
    let slow_poll = |command: &mut Command| {
        command.env("DARTWING_JOBS__POLL_INTERVAL_MS", "120000");
    };
    let mut worker = node(dir, &db.url, &[]);
    slow_poll(&mut worker);
    let (worker, _) = serve_node(&mut worker, "idle-worker", "worker").await;
    let mut api = node(dir, &db.url, &[]);
    slow_poll(&mut api);
    let (api, base) = serve_node(&mut api, "api-only", "api").await;
    // The worker's dispatchers have looked once and gone idle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = reqwest::Client::new();
    for round in 0..3 {
        let started = Instant::now();
        let job_id = enqueue_sleep(&client, &base, &key, 10).await;
        let done = wait_status(&client, &base, &key, &job_id, "Completed").await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(15),
            "round {round}: the job waited {took:?} for the other node's worker (its poll is 120 s): {done}"
        );
    }
    api.signal("TERM");
    worker.signal("TERM");
    assert!(api.wait().success());
    assert!(worker.wait().success());
}
