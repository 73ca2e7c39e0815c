//! Background jobs (SPEC §8 test matrix and issue scenarios), on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use async_trait::async_trait;
use dartwing_core::publish::Target;
use dartwing_core::{Action, EnqueuePolicy, Principal, Timestamp};
use dartwing_e2e::{RecordingPublisher, TestDatabase, TestServer};
use dartwing_jobs::model::{JobInfo, JobStatus, NewJob, Priority, Queue};
use dartwing_jobs::{HandlerRegistry, JobContext, JobError, JobHandler};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn admin() -> Principal {
    Principal::system("test")
}

/// Fast polling and immediate retries, so scenarios finish quickly.
fn quick(c: &mut dartwing_core::config::Config) {
    c.jobs.poll_interval_ms = 20;
    c.jobs.completion_flush_ms = 2;
    for queue in [
        &mut c.jobs.queues.critical,
        &mut c.jobs.queues.default,
        &mut c.jobs.queues.bulk,
    ] {
        queue.retry_delays_secs = vec![0];
    }
}

async fn wait_for(server: &TestServer, job_id: &str, done: impl Fn(&JobInfo) -> bool) -> JobInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = server.app.jobs.store().info(job_id).await.unwrap();
        if done(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "job {job_id} stuck at {:?}", info.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finished(server: &TestServer, job_id: &str) -> JobInfo {
    wait_for(server, job_id, |i| i.status.is_final()).await
}

async fn enqueue(server: &TestServer, method: &str, org: Option<&str>, args: Value) -> String {
    server
        .app
        .jobs
        .enqueue(&admin(), NewJob::new(method, org, args))
        .await
        .unwrap()
        .job_id
}

async fn org(server: &TestServer) -> String {
    server.create_org("owner@example.com", "Acme").await
}

/// A test handler counting its runs.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

#[async_trait]
impl JobHandler for Counter {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

dartwing_e2e::backend_tests! {
    async fn fax_jobs_route_to_critical_and_unknown_types_to_default(db) {
        let fax = Counter::default();
        let mut handlers = HandlerRegistry::new();
        handlers
            .register_with("fax.send", EnqueuePolicy::Members(Action::Write), fax.clone())
            .register("custom.thing", Counter::default());
        let server = TestServer::start_full(db, quick, handlers, Arc::default()).await;
        let org = org(&server).await;
        let token = server.token("owner@example.com");
        let reply = server
            .post(
                "/api/method/dartwing_core.jobs.enqueue",
                &token,
                &json!({"method": "fax.send", "organization": org, "args": {}, "priority": "High", "dedup_key": null, "run_at": null}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let message = reply.json()["message"].clone();
        assert_eq!(message["queue"], "critical");
        let job_id = message["job_id"].as_str().unwrap().to_string();
        finished(&server, &job_id).await;
        assert_eq!(fax.0.load(Ordering::SeqCst), 1);
        let custom = server
            .app
            .jobs
            .enqueue(&admin(), NewJob::new("custom.thing", Some(&org), json!({})))
            .await
            .unwrap();
        assert_eq!(custom.queue, Queue::Default);
        assert_eq!(server.app.jobs.store().queue_for("import.batch"), Queue::Bulk);

        let status = server
            .get(
                &format!("/api/method/dartwing_core.jobs.status?job_id={job_id}"),
                &token,
            )
            .await
            .json();
        let status = &status["message"];
        for field in [
            "job_id",
            "status",
            "queue",
            "organization",
            "progress",
            "attempts",
            "error",
            "enqueued_at",
            "started_at",
            "finished_at",
        ] {
            assert!(status.get(field).is_some(), "status lacks {field}");
        }
        assert_eq!(status["status"], "Completed");
        assert_eq!(status["attempts"], 1);
        server.stop().await;
    }

    async fn the_501st_pending_job_of_an_organization_is_refused_with_429(db) {
        let publisher = Arc::new(RecordingPublisher::default());
        let server = TestServer::start_full(
            db,
            |c| c.roles = dartwing_core::config::Roles::parse("api").unwrap(),
            HandlerRegistry::new(),
            publisher.clone(),
        )
        .await;
        let org = org(&server).await;
        let jobs: Vec<NewJob> = (0..500)
            .map(|_| NewJob::new("core.noop", Some(&org), json!({})))
            .collect();
        server.app.jobs.enqueue_many(&admin(), jobs).await.unwrap();
        let reply = server
            .post(
                "/api/method/dartwing_core.jobs.enqueue",
                &server.token("owner@example.com"),
                &json!({"method": "core.noop", "organization": org, "args": {}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text);
        assert_eq!(reply.json()["exc_type"], "QueueFullError");
        assert!(reply.json()["message"].as_str().unwrap().contains("queue full"));
        let stored = server
            .app
            .jobs
            .store()
            .list(Some(std::slice::from_ref(&org)), None, 1000)
            .await
            .unwrap();
        assert_eq!(stored.len(), 500, "nothing stored for the refused job");
        let warnings: Vec<_> = publisher
            .events()
            .into_iter()
            .filter(|(e, _, _)| e == "job_limit_warning")
            .collect();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].2, Target::User("owner@example.com".into()));
        server.stop().await;
    }
}

#[tokio::test]
async fn warn_mode_accepts_over_the_cap_and_warns_admins() {
    let db = TestDatabase::sqlite();
    let publisher = Arc::new(RecordingPublisher::default());
    let server = TestServer::start_full(
        &db,
        |c| {
            c.roles = dartwing_core::config::Roles::parse("api").unwrap();
            c.jobs.limit_mode = dartwing_core::config::LimitMode::Warn;
            c.jobs.queues.bulk.max_pending_per_org = Some(2);
        },
        HandlerRegistry::new(),
        publisher.clone(),
    )
    .await;
    let org = org(&server).await;
    for _ in 0..3 {
        server
            .app
            .jobs
            .store()
            .enqueue(&NewJob::new("import.batch", Some(&org), json!({})))
            .await
            .unwrap();
    }
    let (_, at_limit) = server
        .app
        .jobs
        .store()
        .enqueue(&NewJob::new("import.batch", Some(&org), json!({})))
        .await
        .unwrap();
    assert!(at_limit);
    assert_eq!(
        server
            .app
            .jobs
            .store()
            .list(Some(&[org]), None, 10)
            .await
            .unwrap()
            .len(),
        4
    );
    server.stop().await;
}

dartwing_e2e::backend_tests! {
    async fn a_transient_failure_is_retried_then_succeeds(db) {
        let server = TestServer::start_with(db, quick).await;
        let org = org(&server).await;
        let id = enqueue(&server, "core.fail", Some(&org), json!({"fail_attempts": 1})).await;
        let info = finished(&server, &id).await;
        assert_eq!(info.status, JobStatus::Completed);
        assert_eq!(info.attempts, 2);
        assert!(server.app.jobs.store().dead_letters(None, 10).await.unwrap().is_empty());
        server.stop().await;
    }

    async fn three_failures_move_the_job_to_the_dead_letter_queue_and_admins_can_act(db) {
        let server = TestServer::start_with(db, quick).await;
        let org = org(&server).await;
        let id = enqueue(&server, "core.fail", Some(&org), json!({"message": "upstream 503"})).await;
        let info = finished(&server, &id).await;
        assert_eq!(info.status, JobStatus::Failed);
        assert_eq!(info.attempts, 4, "first attempt + 3 retries");
        let token = server.token("owner@example.com");
        let letters = server
            .get(
                &format!("/api/method/dartwing_core.jobs.dead_letters?organization={org}"),
                &token,
            )
            .await
            .json();
        let letter = letters["message"][0].clone();
        assert_eq!(letter["job_id"], id.as_str());
        assert_eq!(letter["retry_count"], 3);
        assert_eq!(letter["failure_reason"], "upstream 503");
        assert_eq!(letter["status"], "Pending");
        assert_eq!(letter["queue"], "default");
        assert_eq!(letter["job_data"], json!({"message": "upstream 503"}));

        // A permanent error fails at once.
        let permanent = enqueue(&server, "core.fail", Some(&org), json!({"permanent": true})).await;
        assert_eq!(finished(&server, &permanent).await.attempts, 1);

        let name = letter["name"].as_str().unwrap();
        let retried = server
            .post(
                "/api/method/dartwing_core.jobs.retry_dead_letter",
                &token,
                &json!({"name": name, "notes": "upstream fixed"}),
            )
            .await;
        assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
        let again = server
            .post(
                "/api/method/dartwing_core.jobs.resolve_dead_letter",
                &token,
                &json!({"name": name}),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "only Pending letters change");
        let member = server.add_member(&org, "member@example.com", "Member").await;
        assert!(!member.is_empty());
        let forbidden = server
            .get(
                &format!("/api/method/dartwing_core.jobs.dead_letters?organization={org}"),
                &server.token("member@example.com"),
            )
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        server.stop().await;
    }

    async fn a_job_past_its_timeout_is_cancelled_retried_and_dead_lettered(db) {
        let server = TestServer::start_with(db, |c| {
            quick(c);
            c.jobs.queues.default.timeout_secs = 1;
            c.jobs.queues.default.retries = 1;
        })
        .await;
        let org = org(&server).await;
        let started = Instant::now();
        let id = enqueue(&server, "core.sleep", Some(&org), json!({"ms": 60_000})).await;
        let info = finished(&server, &id).await;
        assert_eq!(info.status, JobStatus::TimedOut);
        assert_eq!(info.attempts, 2);
        assert!(started.elapsed() < Duration::from_secs(10));
        let letters = server.app.jobs.store().dead_letters(None, 10).await.unwrap();
        assert!(letters[0].failure_reason.contains("timed out"));
        server.stop().await;
    }

    async fn a_flooding_organization_does_not_starve_a_quiet_one(db) {
        let server = TestServer::start_with(db, |c| {
            quick(c);
            c.jobs.queues.default.workers = 4;
            c.jobs.queues.default.max_pending_per_org = None;
        })
        .await;
        let flood = server.create_org("a@example.com", "Flood").await;
        let quiet = server.create_org("b@example.com", "Quiet").await;
        let a_jobs: Vec<NewJob> = (0..5000)
            .map(|_| NewJob::new("core.sleep", Some(&flood), json!({"ms": 2})))
            .collect();
        server.app.jobs.enqueue_many(&admin(), a_jobs).await.unwrap();
        let b_enqueued = Timestamp::now();
        let b_jobs: Vec<NewJob> = (0..20)
            .map(|_| NewJob::new("core.sleep", Some(&quiet), json!({"ms": 2})))
            .collect();
        let b_ids: Vec<String> = server
            .app
            .jobs
            .enqueue_many(&admin(), b_jobs)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.job_id)
            .collect();
        let mut b_last_start = b_enqueued;
        for id in &b_ids {
            let info = finished(&server, id).await;
            b_last_start = b_last_start.max(info.started_at.unwrap());
        }
        let a_all = server
            .app
            .jobs
            .store()
            .list(Some(std::slice::from_ref(&flood)), None, 5000)
            .await
            .unwrap();
        let a_waiting_when_b_arrived = a_all
            .iter()
            .filter(|j| j.started_at.is_none_or(|s| s > b_enqueued))
            .count();
        let a_started_while_b_waited = a_all
            .iter()
            .filter(|j| j.started_at.is_some_and(|s| s > b_enqueued && s <= b_last_start))
            .count();
        assert!(
            a_waiting_when_b_arrived > 1000,
            "the flood was still queued ({a_waiting_when_b_arrived})"
        );
        assert!(
            a_started_while_b_waited <= 80,
            "B's 20 jobs interleave with A's backlog: {a_started_while_b_waited} of A's jobs started before B's last"
        );
        server.stop().await;
    }

    async fn priorities_order_jobs_within_an_organization(db) {
        let server =
            TestServer::start_with(db, |c| c.roles = dartwing_core::config::Roles::parse("api").unwrap()).await;
        let org = org(&server).await;
        let mut low = NewJob::new("core.noop", Some(&org), json!({}));
        low.priority = Priority::Low;
        let normal = NewJob::new("core.noop", Some(&org), json!({}));
        let mut high = NewJob::new("core.noop", Some(&org), json!({}));
        high.priority = Priority::High;
        let ids: Vec<String> = server
            .app
            .jobs
            .enqueue_many(&admin(), vec![low, normal, high])
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.job_id)
            .collect();
        let claimed = server.app.jobs.store().claim(Queue::Default, "probe", 3).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let by_vtime: Vec<String> = {
            let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM job ORDER BY vtime, id")
                .fetch_all(server.app.db.pool())
                .await
                .unwrap();
            rows.into_iter().map(|(id,)| id).collect()
        };
        assert_eq!(
            by_vtime,
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
            "High, Normal, Low"
        );
        server.stop().await;
    }

    async fn dedup_key_suppresses_duplicates_within_the_window(db) {
        let server =
            TestServer::start_with(db, |c| c.roles = dartwing_core::config::Roles::parse("api").unwrap()).await;
        let org = org(&server).await;
        let job = |window| {
            let mut job = NewJob::new("core.noop", Some(&org), json!({}));
            job.dedup_key = Some("nightly-report".into());
            job.dedup_window_secs = Some(window);
            job
        };
        let first = server.app.jobs.enqueue(&admin(), job(1)).await.unwrap();
        let second = server.app.jobs.enqueue(&admin(), job(1)).await.unwrap();
        assert_eq!(second.job_id, first.job_id);
        assert!(second.deduplicated);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let third = server.app.jobs.enqueue(&admin(), job(1)).await.unwrap();
        assert_ne!(third.job_id, first.job_id, "a new job once the window passed");
        assert!(!third.deduplicated);
        server.stop().await;
    }

    async fn run_at_is_honoured(db) {
        let server = TestServer::start_with(db, quick).await;
        let org = org(&server).await;
        let run_at = Timestamp::from_micros(Timestamp::now().as_micros() + 1_500_000);
        let mut job = NewJob::new("core.noop", Some(&org), json!({}));
        job.run_at = Some(run_at);
        let id = server.app.jobs.enqueue(&admin(), job).await.unwrap().job_id;
        assert_eq!(
            server.app.jobs.store().info(&id).await.unwrap().status,
            JobStatus::Pending
        );
        let info = finished(&server, &id).await;
        assert!(
            info.started_at.unwrap() >= run_at,
            "started {:?} before {run_at}",
            info.started_at
        );
        server.stop().await;
    }

    async fn pending_and_running_jobs_can_be_cancelled(db) {
        let server = TestServer::start_with(db, quick).await;
        let org = org(&server).await;
        let token = server.token("owner@example.com");
        let mut later = NewJob::new("core.noop", Some(&org), json!({}));
        later.run_at = Some(Timestamp::from_micros(Timestamp::now().as_micros() + 60_000_000));
        let pending = server.app.jobs.enqueue(&admin(), later).await.unwrap().job_id;
        let reply = server
            .post(
                "/api/method/dartwing_core.jobs.cancel",
                &token,
                &json!({"job_id": pending}),
            )
            .await;
        assert_eq!(reply.json()["message"]["status"], "Canceled");

        let running = enqueue(&server, "core.sleep", Some(&org), json!({"ms": 60_000})).await;
        wait_for(&server, &running, |i| i.status == JobStatus::Running).await;
        let asked = Instant::now();
        let reply = server
            .post(
                "/api/method/dartwing_core.jobs.cancel",
                &token,
                &json!({"job_id": running}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let info = finished(&server, &running).await;
        assert_eq!(info.status, JobStatus::Canceled);
        assert!(asked.elapsed() < Duration::from_secs(5));
        let again = server
            .post(
                "/api/method/dartwing_core.jobs.cancel",
                &token,
                &json!({"job_id": running}),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        server.stop().await;
    }
}

/// A handler that reads organizations through the tenancy store, as the job's principal.
struct ReadOrganizations {
    tenancy: dartwing_tenancy::TenancyStore,
    other: String,
}

#[async_trait]
impl JobHandler for ReadOrganizations {
    async fn run(&self, ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        let own = ctx.organization.clone().unwrap();
        self.tenancy
            .organization(&ctx.principal, &own)
            .await
            .map_err(JobError::from)?;
        self.tenancy
            .organization(&ctx.principal, &self.other)
            .await
            .map_err(JobError::from)?;
        Ok(())
    }
}

dartwing_e2e::backend_tests! {
    async fn a_job_in_one_organization_cannot_read_another(db) {
        let config = dartwing_core::config::DatabaseConfig::default();
        let tenancy =
            dartwing_tenancy::TenancyStore::new(dartwing_db::Db::connect(&db.url, &config, None).await.unwrap());
        let mut handlers = HandlerRegistry::new();
        handlers.register(
            "test.read_orgs",
            ReadOrganizations {
                tenancy,
                other: "ORG-B".into(),
            },
        );
        let server = TestServer::start_full(db, quick, handlers, Arc::default()).await;
        let org = org(&server).await;
        let body = json!({"name": "ORG-B", "org_name": "Other", "org_type": "Family"});
        let created = server
            .post("/api/resource/Organization", &server.token("b@example.com"), &body)
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text);
        let id = enqueue(&server, "test.read_orgs", Some(&org), json!({})).await;
        let info = finished(&server, &id).await;
        assert_eq!(info.status, JobStatus::Failed);
        assert_eq!(info.attempts, 1, "a permission error is permanent");
        assert!(info.error.unwrap().contains("Not permitted to read organization ORG-B"));
        server.stop().await;
    }

    async fn critical_jobs_run_while_default_and_bulk_are_saturated(db) {
        let fax = Counter::default();
        let mut handlers = HandlerRegistry::new();
        handlers
            .register("fax.send", fax.clone())
            .register("import.batch", dartwing_jobs::builtin::Sleep);
        let server = TestServer::start_full(
            db,
            |c| {
                quick(c);
                c.jobs.queues.default.workers = 2;
                c.jobs.queues.bulk.workers = 1;
            },
            handlers,
            Arc::default(),
        )
        .await;
        let org = org(&server).await;
        let mut saturate: Vec<NewJob> = (0..10)
            .map(|_| NewJob::new("core.sleep", Some(&org), json!({"ms": 20_000})))
            .collect();
        saturate.extend((0..5).map(|_| NewJob::new("import.batch", Some(&org), json!({"ms": 20_000}))));
        server.app.jobs.enqueue_many(&admin(), saturate).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let id = enqueue(&server, "fax.send", Some(&org), json!({})).await;
        let info = finished(&server, &id).await;
        assert_eq!(info.status, JobStatus::Completed);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "critical job waited {:?}",
            started.elapsed()
        );
        let running = server
            .app
            .jobs
            .store()
            .list(Some(&[org]), Some(JobStatus::Running), 100)
            .await
            .unwrap();
        assert_eq!(running.len(), 3, "default (2) and bulk (1) stay saturated");
        server.stop().await;
    }

    async fn a_suspended_organizations_jobs_pause_until_it_is_reactivated(db) {
        let server = TestServer::start_with(db, quick).await;
        let org = org(&server).await;
        let root = server.admin_token("root@example.com");
        let path = format!("/api/resource/Organization/{org}");
        assert_eq!(
            server.put(&path, &root, &json!({"status": "Suspended"})).await.status,
            StatusCode::OK
        );
        // The job engine records the pause when it hears of the suspension, just after the answer.
        let mut recorded = false;
        for _ in 0..100 {
            let paused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_paused_org WHERE org_key = $1")
                .bind(&org)
                .fetch_one(server.app.db.pool())
                .await
                .unwrap();
            if paused == 1 {
                recorded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(recorded, "the suspension was never recorded as a pause");
        let id = enqueue(&server, "core.noop", Some(&org), json!({})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            server.app.jobs.store().info(&id).await.unwrap().status,
            JobStatus::Queued
        );
        let refused = server
            .post(
                "/api/method/dartwing_core.jobs.enqueue",
                &server.token("owner@example.com"),
                &json!({"method": "core.noop", "organization": org}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "users of a suspended organization cannot write"
        );
        assert_eq!(
            server.put(&path, &root, &json!({"status": "Active"})).await.status,
            StatusCode::OK
        );
        assert_eq!(finished(&server, &id).await.status, JobStatus::Completed);
        server.stop().await;
    }
}

/// A handler that reports progress.
struct Reports;

#[async_trait]
impl JobHandler for Reports {
    async fn run(&self, ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        ctx.progress(50.0, "half way").await?;
        ctx.output_reference("/files/report.pdf").await
    }
}

#[tokio::test]
async fn progress_and_status_changes_are_stored_and_sent_to_the_organization_room() {
    let db = TestDatabase::sqlite();
    let publisher = Arc::new(RecordingPublisher::default());
    let mut handlers = HandlerRegistry::new();
    handlers.register_with("report.generate", EnqueuePolicy::Members(Action::Write), Reports);
    let server = TestServer::start_full(&db, quick, handlers, publisher.clone()).await;
    let org = org(&server).await;
    let reply = server
        .post(
            "/api/method/dartwing_core.jobs.enqueue",
            &server.token("owner@example.com"),
            &json!({"method": "report.generate", "organization": org, "args": {}}),
        )
        .await;
    let id = reply.json()["message"]["job_id"].as_str().unwrap().to_string();
    let info = finished(&server, &id).await;
    assert_eq!(info.progress, Some(json!({"percent": 50.0, "message": "half way"})));
    let room = Target::Room(format!("org:{org}"));
    let progress: Vec<_> = publisher
        .events()
        .into_iter()
        .filter(|(e, _, _)| e == "job_progress")
        .collect();
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].2, room);
    let message = &progress[0].1;
    assert_eq!(
        (&message["job_id"], &message["job_type"], &message["status"]),
        (&json!(id), &json!("report.generate"), &json!("Running"))
    );
    assert_eq!(
        (&message["progress"], &message["progress_message"]),
        (&json!(50.0), &json!("half way"))
    );
    assert!(
        message["updated_at"].as_str().unwrap().parse::<Timestamp>().is_ok(),
        "{message}"
    );
    // Every recorded status change, in order, to the same room.
    let deadline = Instant::now() + Duration::from_secs(10);
    let changes = loop {
        let changes: Vec<(Value, Value, Value)> = publisher
            .events()
            .into_iter()
            .filter(|(e, m, target)| e == "job_status_changed" && m["job_id"] == id.as_str() && *target == room)
            .map(|(_, m, _)| {
                (
                    m["from_status"].clone(),
                    m["to_status"].clone(),
                    m["output_reference"].clone(),
                )
            })
            .collect();
        if changes.len() >= 3 || Instant::now() > deadline {
            break changes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        changes,
        [
            (Value::Null, json!("Queued"), Value::Null),
            (json!("Queued"), json!("Running"), Value::Null),
            (json!("Running"), json!("Completed"), json!("/files/report.pdf")),
        ]
    );
    assert_eq!(info.output_reference.as_deref(), Some("/files/report.pdf"));
    server.stop().await;
}

dartwing_e2e::backend_tests! {
    async fn cron_ticks_run_once_across_three_schedulers(db) {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                TestServer::start_with(db, |c| {
                    c.roles = dartwing_core::config::Roles::parse("api,scheduler").unwrap();
                    c.jobs.stuck_check_interval_secs = 1;
                })
                .await,
            );
        }
        tokio::time::sleep(Duration::from_millis(3_600)).await;
        for node in nodes {
            node.stop().await;
        }
        // Stopped nodes have closed their pools; count with a connection of the test's own.
        let db_pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await
            .unwrap();
        let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM job WHERE method = 'jobs.stuck_detection'")
            .fetch_one(&db_pool)
            .await
            .unwrap();
        let (ticks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cron_tick WHERE name = 'jobs.stuck_detection'")
            .fetch_one(&db_pool)
            .await
            .unwrap();
        assert!(
            (3..=5).contains(&jobs),
            "one job per one-second tick, not per node: {jobs}"
        );
        assert_eq!(jobs, ticks);
        let (purges,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM job WHERE method = 'jobs.dlq_purge'")
            .fetch_one(&db_pool)
            .await
            .unwrap();
        assert_eq!(purges, 1, "the daily tick is enqueued once");
    }

    async fn bad_enqueue_input_gets_a_clear_4xx_and_stores_nothing(db) {
        let server = TestServer::start_with(db, |c| {
            c.roles = dartwing_core::config::Roles::parse("api").unwrap();
            c.jobs.max_args_bytes = 1024;
        })
        .await;
        let org = org(&server).await;
        let token = server.token("owner@example.com");
        let root = server.admin_token("root@example.com");
        let cases: Vec<(&str, Value, StatusCode)> = vec![
            (
                &root,
                json!({"method": "core.noop", "organization": "ORG-NOPE"}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": "ORG-NOPE"}),
                StatusCode::FORBIDDEN,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": org, "args": {"x": "y".repeat(2000)}}),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": org, "priority": "Urgent"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                &token,
                json!({"method": "no.such.type", "organization": org}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": org, "args": [1, 2]}),
                StatusCode::BAD_REQUEST,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": org, "run_at": "tomorrow"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": org, "colour": "red"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                &token,
                json!({"method": "core.noop", "organization": null}),
                StatusCode::FORBIDDEN,
            ),
        ];
        for (who, body, expected) in cases {
            let reply = server.post("/api/method/dartwing_core.jobs.enqueue", who, &body).await;
            assert_eq!(reply.status, expected, "{body} → {}", reply.text);
            assert!(reply.json()["exc_type"].is_string());
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM job")
            .fetch_one(server.app.db.pool())
            .await
            .unwrap();
        assert_eq!(count, 0);
        let unknown = server
            .get("/api/method/dartwing_core.jobs.status?job_id=nope", &token)
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        server.stop().await;
    }
}
