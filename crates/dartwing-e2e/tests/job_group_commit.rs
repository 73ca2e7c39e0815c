//! Group commit of enqueues and `jobs.enqueue_batch`, on SQLite and PostgreSQL: concurrent
//! enqueues share transactions yet each caller gets its own answer; a job refused on its own fails
//! alone; a database failure answers every waiting caller; closing commits what is waiting.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::config::{Config, DatabaseConfig, JobsConfig, LimitMode};
use dartwing_core::{ErrorKind, Timestamp};
use dartwing_db::{Backend, Db};
use dartwing_e2e::{TestDatabase, TestServer};
use dartwing_jobs::JobStore;
use dartwing_jobs::model::{Enqueued, NewJob};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// An answer must come within this long (a caller that hangs fails the test).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// A job type no worker of the test node runs before its time: due in an hour.
fn later(method: &str, org: &str) -> NewJob {
    let mut job = NewJob::new(method, Some(org), json!({}));
    job.run_at = Some(Timestamp::from_micros(Timestamp::now().as_micros() + 3_600_000_000));
    job
}

/// A store of its own on the node's database, with this group-commit setting.
fn store_on(db: Db, linger_ms: u64, adjust: impl FnOnce(&mut JobsConfig)) -> JobStore {
    let mut config = JobsConfig {
        enqueue_linger_ms: linger_ms,
        enqueue_batch_max: 64,
        ..JobsConfig::default()
    };
    adjust(&mut config);
    JobStore::new(db, Arc::new(config)).unwrap()
}

/// Enqueues every job concurrently (one task each) and returns the answers in order.
async fn enqueue_concurrently(store: &JobStore, jobs: Vec<NewJob>) -> Vec<dartwing_core::Result<(Enqueued, bool)>> {
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let store = store.clone();
            tokio::spawn(async move { tokio::time::timeout(ANSWER_WITHIN, store.enqueue(&job)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().expect("every caller is answered"));
    }
    answers
}

async fn stored_ids(server: &TestServer) -> HashSet<String> {
    // The node's own periodic jobs are not the test's.
    sqlx::query_scalar::<_, String>("SELECT id FROM job WHERE method LIKE 'test.%' OR method = 'core.noop'")
        .fetch_all(server.app.db.pool())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Makes the database refuse to store jobs of type `test.poison` (a row fault of one job).
async fn refuse_poison(db: &TestDatabase, server: &TestServer) {
    let statements: &[&str] = match db.backend {
        Backend::Sqlite => &[
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON job WHEN NEW.method = 'test.poison' \
              BEGIN SELECT RAISE(ABORT, 'poisoned job'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.method = 'test.poison' THEN RAISE EXCEPTION 'poisoned job'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON job FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
    };
    for statement in statements {
        sqlx::query(statement).execute(server.app.db.pool()).await.unwrap();
    }
}

fn quick(c: &mut Config) {
    c.jobs.poll_interval_ms = 20;
    c.jobs.completion_flush_ms = 2;
}

dartwing_e2e::backend_tests! {
    async fn concurrent_enqueues_share_transactions_and_each_caller_gets_its_own_job(db) runtime(flavor = "multi_thread", worker_threads = 2) {
        let server = TestServer::start_with(db, quick).await;
        let store = store_on(server.app.db.clone(), 20, |_| {});
        let orgs = ["org-a", "org-b", "org-c"];
        let jobs: Vec<NewJob> = (0..150)
            .map(|i| NewJob::new("test.unrun", Some(orgs[i % 3]), json!({ "i": i })))
            .collect();
        let answers = enqueue_concurrently(&store, jobs).await;
        let ids: Vec<String> = answers.into_iter().map(|a| a.unwrap().0.job_id).collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), 150, "every caller got a job of its own");
        assert_eq!(stored_ids(&server).await, unique, "exactly the answered jobs are stored");

        // Each caller's job carries its own arguments.
        let rows: Vec<(String, String, String, i64, i64)> =
            sqlx::query_as("SELECT id, org_key, args, vtime, enqueued_at_us FROM job WHERE method = 'test.unrun'")
                .fetch_all(server.app.db.pool())
                .await
                .unwrap();
        for (i, id) in ids.iter().enumerate() {
            let (_, org_key, args, _, _) = rows.iter().find(|r| &r.0 == id).unwrap();
            assert_eq!(org_key, orgs[i % 3]);
            assert_eq!(serde_json::from_str::<Value>(args).unwrap(), json!({ "i": i }));
        }
        // Jobs of one transaction share its enqueue time: fewer transactions than jobs.
        let commits: HashSet<i64> = rows.iter().map(|r| r.4).collect();
        assert!(commits.len() < 150, "{} transactions for 150 enqueues", commits.len());

        // Within each lane the virtual times are distinct, and the lane ends at the last one.
        let mut by_lane: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (_, org_key, _, vtime, _) in &rows {
            by_lane.entry(org_key.clone()).or_default().push(*vtime);
        }
        for (org_key, mut vtimes) in by_lane {
            vtimes.sort_unstable();
            vtimes.dedup();
            assert_eq!(vtimes.len(), 50, "lane {org_key}: distinct virtual times");
            let last: i64 = sqlx::query_scalar("SELECT last_vtime FROM job_lane WHERE queue = 'default' AND org_key = $1")
                .bind(org_key.clone())
                .fetch_one(server.app.db.pool())
                .await
                .unwrap();
            assert!(last >= *vtimes.last().unwrap(), "lane {org_key} ends at or after its last job");
        }
        store.close_enqueues().await;
        server.stop().await;
    }

    async fn a_job_refused_at_its_cap_fails_alone_in_a_shared_transaction(db) runtime(flavor = "multi_thread", worker_threads = 2) {
        let server = TestServer::start_with(db, quick).await;
        let store = store_on(server.app.db.clone(), 50, |c| {
            c.limit_mode = LimitMode::Reject;
            c.queues.default.max_pending_per_org = Some(3);
        });
        let jobs: Vec<NewJob> = (0..10).map(|i| later("test.unrun", if i % 2 == 0 { "org-a" } else { "org-b" })).collect();
        let answers = enqueue_concurrently(&store, jobs).await;
        let accepted: HashSet<String> = answers.iter().filter_map(|a| a.as_ref().ok()).map(|a| a.0.job_id.clone()).collect();
        let refused: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
        assert_eq!(accepted.len(), 6, "3 per organization: {answers:?}");
        assert_eq!(refused.len(), 4);
        assert!(refused.iter().all(|e| e.kind() == ErrorKind::RateLimited && e.exc_type() == "QueueFullError"));
        assert_eq!(stored_ids(&server).await, accepted, "the accepted jobs committed despite the refused ones");
        store.close_enqueues().await;
        server.stop().await;
    }

    async fn a_job_the_database_refuses_fails_alone_and_the_others_commit(db) runtime(flavor = "multi_thread", worker_threads = 2) {
        let server = TestServer::start_with(db, quick).await;
        refuse_poison(db, &server).await;
        let store = store_on(server.app.db.clone(), 50, |_| {});
        let mut jobs: Vec<NewJob> = (0..10).map(|_| later("test.unrun", "org-a")).collect();
        jobs.insert(4, later("test.poison", "org-a"));
        let answers = enqueue_concurrently(&store, jobs).await;
        assert!(answers[4].is_err(), "the refused job fails: {:?}", answers[4]);
        let accepted: HashSet<String> = answers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, a)| a.as_ref().expect("the other jobs commit").0.job_id.clone())
            .collect();
        assert_eq!(accepted.len(), 10);
        assert_eq!(stored_ids(&server).await, accepted);
        store.close_enqueues().await;
        server.stop().await;
    }

    async fn a_database_failure_answers_every_waiting_caller(db) runtime(flavor = "multi_thread", worker_threads = 2) {
        let server = TestServer::start_with(db, quick).await;
        let own_db = Db::connect(&db.url, &DatabaseConfig::default(), None).await.unwrap();
        // The first caller waits 300 ms for others to join; the database goes away meanwhile.
        let store = store_on(own_db.clone(), 300, |_| {});
        let jobs: Vec<NewJob> = (0..20).map(|_| later("test.unrun", "org-a")).collect();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { enqueue_concurrently(&store, jobs).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        own_db.pool().close().await;
        let answers = waiting.await.unwrap();
        assert_eq!(answers.len(), 20, "every caller was answered");
        // A group that committed before the database went away answered its jobs; every caller
        // still waiting then got the failure.
        let committed: HashSet<String> = answers.iter().filter_map(|a| a.as_ref().ok()).map(|a| a.0.job_id.clone()).collect();
        let failed: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
        assert!(!failed.is_empty(), "the lingering group failed");
        for e in failed {
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        }
        assert_eq!(stored_ids(&server).await, committed);
        // Later callers are answered too, not left waiting.
        let late = tokio::time::timeout(ANSWER_WITHIN, store.enqueue(&later("test.unrun", "org-a"))).await;
        assert!(late.expect("answered").is_err());
        store.close_enqueues().await;
        server.stop().await;
    }

    async fn closing_commits_the_waiting_enqueues(db) runtime(flavor = "multi_thread", worker_threads = 2) {
        let server = TestServer::start_with(db, quick).await;
        // A linger far longer than the test: only closing makes the group commit.
        let store = store_on(server.app.db.clone(), 600_000, |_| {});
        let jobs: Vec<NewJob> = (0..12).map(|_| later("test.unrun", "org-a")).collect();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { enqueue_concurrently(&store, jobs).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the group is still lingering");
        tokio::time::timeout(ANSWER_WITHIN, store.close_enqueues()).await.expect("closing finishes");
        let answers = waiting.await.unwrap();
        let accepted: HashSet<String> = answers.into_iter().map(|a| a.unwrap().0.job_id).collect();
        assert_eq!(accepted.len(), 12);
        // After closing, an enqueue commits on its own.
        let (after, _) = store.enqueue(&later("test.unrun", "org-a")).await.unwrap();
        let stored = stored_ids(&server).await;
        assert!(stored.is_superset(&accepted) && stored.contains(&after.job_id));
        assert_eq!(stored.len(), 13);
        server.stop().await;
    }

    async fn dedup_keys_apply_per_job_within_one_transaction(db) runtime(flavor = "multi_thread", worker_threads = 2) {
        let server = TestServer::start_with(db, quick).await;
        let store = store_on(server.app.db.clone(), 50, |_| {});
        let keyed = |key: &str| {
            let mut job = later("test.unrun", "org-a");
            job.dedup_key = Some(key.to_string());
            job
        };
        let (existing, _) = store.enqueue(&keyed("k1")).await.unwrap();
        let answers = enqueue_concurrently(&store, vec![keyed("k1"), keyed("k2"), keyed("k2"), keyed("k3")]).await;
        let answers: Vec<Enqueued> = answers.into_iter().map(|a| a.unwrap().0).collect();
        assert_eq!(answers[0].job_id, existing.job_id);
        assert!(answers[0].deduplicated);
        assert_eq!(answers[1].job_id, answers[2].job_id, "one k2 job for both callers");
        assert_eq!(
            [answers[1].deduplicated, answers[2].deduplicated].iter().filter(|d| **d).count(),
            1,
            "exactly one of the two k2 callers created the job"
        );
        assert!(!answers[3].deduplicated);
        assert_eq!(stored_ids(&server).await.len(), 3, "k1, k2, k3");
        store.close_enqueues().await;
        server.stop().await;
    }

    async fn enqueue_batch_answers_each_job_in_order_in_one_transaction(db) {
        let server = TestServer::start_with(db, |c| {
            quick(c);
            c.jobs.queues.default.max_pending_per_org = Some(3);
        })
        .await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let token = server.token("owner@example.com");
        let run_at = Timestamp::from_micros(Timestamp::now().as_micros() + 3_600_000_000).to_string();
        let job = |key: Option<&str>| json!({"method": "core.noop", "organization": org, "args": {}, "dedup_key": key, "run_at": run_at});
        let reply = server
            .post(
                "/api/method/dartwing_core.jobs.enqueue_batch",
                &token,
                &json!({"jobs": [job(Some("a")), job(Some("a")), job(None), job(None), job(None)]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let answers = reply.json()["message"].as_array().unwrap().clone();
        assert_eq!(answers.len(), 5);
        let first = answers[0]["job_id"].as_str().unwrap();
        assert_eq!(answers[1]["job_id"], first, "the duplicate answers the first job");
        assert_eq!(answers[1]["deduplicated"], true);
        assert!(answers[2]["job_id"].is_string() && answers[3]["job_id"].is_string());
        assert_eq!(answers[4]["error"]["status"], 429, "the fourth pending job is over the cap: {answers:?}");
        assert_eq!(answers[4]["error"]["exc_type"], "QueueFullError");
        let stored = stored_ids(&server).await;
        let expected: HashSet<String> = answers[..4].iter().map(|a| a["job_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(stored, expected);
        server.stop().await;
    }

    async fn enqueue_batch_refuses_bad_input_and_stores_nothing(db) {
        let server = TestServer::start_with(db, quick).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let other = server.create_org("other@example.com", "Other").await;
        let token = server.token("owner@example.com");
        let path = "/api/method/dartwing_core.jobs.enqueue_batch";
        let job = |org: &str| json!({"method": "core.noop", "organization": org, "args": {}});
        let cases = [
            (json!({"jobs": []}), StatusCode::BAD_REQUEST, "at least one job"),
            (json!({"jobs": vec![job(&org); 1001]}), StatusCode::BAD_REQUEST, "at most 1000"),
            (json!({"jobs": [job(&org), {"method": "core.noop", "organization": org, "colour": "red"}]}), StatusCode::BAD_REQUEST, "colour"),
            (json!({"jobs": [job(&org), {"organization": org}]}), StatusCode::BAD_REQUEST, "method"),
            (json!({"jobs": job(&org)}), StatusCode::BAD_REQUEST, ""),
            (json!({"jobs": [job(&org), {"method": "core.noop", "organization": org, "args": {}, "run_at": "soon"}]}), StatusCode::BAD_REQUEST, "jobs[1]"),
            (json!({"jobs": [job(&org), {"method": "core.noop", "organization": org, "args": []}]}), StatusCode::BAD_REQUEST, "jobs[1]"),
            (json!({"jobs": [job(&org), job(&other)]}), StatusCode::FORBIDDEN, "jobs[1]"),
            (json!({"jobs": [job(&org), {"method": "jobs.dlq_purge", "args": {}}]}), StatusCode::FORBIDDEN, "jobs[1]"),
            (json!({"jobs": [job(&org), {"method": "no.such_type", "organization": org, "args": {}}]}), StatusCode::UNPROCESSABLE_ENTITY, "jobs[1]"),
        ];
        for (body, status, says) in cases {
            let reply = server.post(path, &token, &body).await;
            assert_eq!(reply.status, status, "{body}: {}", reply.text);
            assert!(reply.text.contains(says), "{} should mention {says}", reply.text);
        }
        assert!(stored_ids(&server).await.is_empty(), "no refused request stored a job");
        server.stop().await;
    }
}
