//! The harness itself: a test's database and child processes are released however the test ends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_e2e::TestDatabase;
use dartwing_e2e::process::{ChildGuard, free_port};
use sqlx::Connection;
use std::process::{Command, Stdio};

/// Whether process `pid` still exists.
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("kill runs")
        .success()
}

#[test]
fn a_dropped_child_guard_kills_and_reaps_its_process() {
    let child = ChildGuard::spawn(Command::new("sleep").arg("60"));
    let pid = child.id();
    assert!(alive(pid));
    drop(child);
    assert!(!alive(pid), "process {pid} outlived its guard");
}

#[test]
fn a_child_guard_dropped_by_a_panic_kills_its_process() {
    let pid = std::sync::Mutex::new(0);
    let result = std::panic::catch_unwind(|| {
        let child = ChildGuard::spawn(Command::new("sleep").arg("60"));
        *pid.lock().unwrap() = child.id();
        panic!("the test fails before stopping its process");
    });
    assert!(result.is_err());
    let pid = *pid.lock().unwrap();
    assert!(pid > 0 && !alive(pid), "process {pid} outlived a panicking test");
}

#[test]
fn free_ports_can_be_bound() {
    let port = free_port();
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}

/// Whether `schema` exists in the test PostgreSQL.
async fn schema_exists(schema: &str) -> bool {
    let admin_url = std::env::var("DARTWING_TEST_DATABASE_URL").unwrap();
    let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
    let found: Option<String> =
        sqlx::query_scalar("SELECT CAST(schema_name AS TEXT) FROM information_schema.schemata WHERE schema_name = $1")
            .bind(schema)
            .fetch_optional(&mut admin)
            .await
            .unwrap();
    found.is_some()
}

#[tokio::test]
async fn a_dropped_postgres_database_drops_its_schema_even_while_a_connection_holds_locks() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let schema: String = {
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert!(schema.starts_with("dw_test_"), "{schema}");
    assert!(schema_exists(&schema).await);

    // A connection left in an open transaction holding a lock on a table of the schema, as a
    // server of a failed test may leave one.
    let mut holder = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE held (id BIGINT)")
        .execute(&mut holder)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();

    drop(db);
    assert!(
        !schema_exists(&schema).await,
        "schema {schema} outlived its test database"
    );
    assert!(
        sqlx::query("SELECT 1").execute(&mut holder).await.is_err(),
        "the lock holder's connection was ended"
    );
}
