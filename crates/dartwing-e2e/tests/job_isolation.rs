//! Jobs run only in their own organization's context, are enqueued only by whom their type
//! admits, share the workers so that no organization holds them all, and do not pile up forever;
//! platform rooms are for platform administrators. Each scenario is an attack refused, on SQLite
//! and PostgreSQL, with proof that nothing changed and nothing was sent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::publish::Target;
use dartwing_core::{Principal, Timestamp};
use dartwing_e2e::scenario::{ALICE, BOB, Scene, assert_refused};
use dartwing_e2e::smtp::SmtpSink;
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_e2e::{RecordingPublisher, TestServer};
use dartwing_integrations::TokenGrant;
use dartwing_jobs::HandlerRegistry;
use dartwing_jobs::model::{DeadLetterStatus, JobInfo, JobStatus, NewJob};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENQUEUE: &str = "/api/method/dartwing_core.jobs.enqueue";
const RETRY_DEAD_LETTER: &str = "/api/method/dartwing_core.jobs.retry_dead_letter";
const NOTIFY: &str = "integrations.notify_expired";
/// A Member (not an Admin) of Alpha.
const MALLORY: &str = "mallory@example.com";

/// Every job type the runtime keeps to itself.
const INTERNAL_TYPES: [&str; 6] = [
    "jobs.dlq_purge",
    "jobs.stuck_detection",
    "jobs.purge_finished",
    "sync.change_log_retention",
    "integration.refresh_token",
    NOTIFY,
];

fn runtime() -> Principal {
    Principal::system("test")
}

/// Fast polling and immediate retries; a short shutdown grace so long jobs do not hold the stop.
fn quick(c: &mut dartwing_core::config::Config) {
    c.jobs.poll_interval_ms = 20;
    c.jobs.completion_flush_ms = 2;
    c.http.shutdown_grace_secs = 1;
    for queue in [
        &mut c.jobs.queues.critical,
        &mut c.jobs.queues.default,
        &mut c.jobs.queues.bulk,
    ] {
        queue.retry_delays_secs = vec![0];
    }
}

async fn wait_until_final(server: &TestServer, job_id: &str) -> JobInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = server.app.jobs.store().info(job_id).await.unwrap();
        if info.status.is_final() {
            return info;
        }
        assert!(Instant::now() < deadline, "job {job_id} stuck at {:?}", info.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Enqueues `job` as the runtime and waits until it is final.
async fn run_as_runtime(server: &TestServer, job: NewJob) -> JobInfo {
    let enqueued = server.app.jobs.enqueue(&runtime(), job).await.unwrap();
    wait_until_final(server, &enqueued.job_id).await
}

/// Sample lines of `family` carrying every one of `labels` (`name="value"`).
fn series<'a>(metrics: &'a str, family: &str, labels: &[String]) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .collect()
}

/// Jobs of `org` in `status`.
async fn count(server: &TestServer, org: &str, status: JobStatus) -> usize {
    server
        .app
        .jobs
        .store()
        .list(Some(&[org.to_string()]), Some(status), 500)
        .await
        .unwrap()
        .len()
}

async fn enqueue_as(server: &TestServer, token: &str, body: Value) -> String {
    let reply = server.post(ENQUEUE, token, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{body} → {}", reply.text);
    reply.json()["message"]["job_id"].as_str().unwrap().to_string()
}

/// A scene whose notification mail goes to `smtp`, recording realtime events.
async fn mail_scene(db: &dartwing_e2e::TestDatabase, smtp: &SmtpSink) -> Scene {
    let server = TestServer::start_full(
        db,
        |c| {
            quick(c);
            smtp.configure(c);
        },
        HandlerRegistry::new(),
        Arc::new(RecordingPublisher::default()),
    )
    .await;
    Scene::on(server).await
}

/// Connects `integration` for `org` and marks it Expired, as a refused refresh would.
async fn expired_integration(server: &TestServer, org: &str, integration: &str) {
    let grant = TokenGrant {
        access_token: "access-secret".into(),
        refresh_token: Some("refresh-secret".into()),
        expires_in: Some(Duration::from_secs(3600)),
        scopes: None,
    };
    server
        .app
        .integrations
        .store_tokens(org, integration, &grant, "test")
        .await
        .unwrap();
    sqlx::query("UPDATE organization_integration SET status = 'Expired' WHERE organization = $1 AND integration = $2")
        .bind(org)
        .bind(integration)
        .execute(server.app.db.pool())
        .await
        .unwrap();
}

dartwing_e2e::backend_tests! {
    /// A Member of Alpha tries to make the platform email Beta's admins with text of their own
    /// (CR/LF included) through `integrations.notify_expired`: the job type is the runtime's own
    /// (403, nothing stored, nothing sent), and even a job carrying such arguments runs only in its
    /// own organization's context, for an integration really Expired there, with the server's text.
    async fn member_of_a_cannot_mail_admins_of_b_through_notify_expired(db) {
        let smtp = SmtpSink::start().await;
        let scene = mail_scene(db, &smtp).await;
        let server = &scene.server;
        server.add_member(&scene.alpha, MALLORY, "Member").await;
        expired_integration(server, &scene.beta, "Google").await;
        let hostile = json!({
            "organization": scene.beta,
            "integration": "Google",
            "subject": "Urgent\r\nBcc: everyone@example.com",
            "body": "Reset your password at http://evil.example",
        });
        let mallory = scene.token(MALLORY);
        let before = scene.snapshot().await;

        // The attack over HTTP: refused whatever organization it names.
        for organization in [json!(scene.alpha), json!(scene.beta), Value::Null] {
            let reply = server
                .post(ENQUEUE, &mallory, &json!({"method": NOTIFY, "organization": organization, "args": hostile}))
                .await;
            assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &["evil.example"]);
        }
        before.assert_unchanged(server, "a refused notify_expired enqueue").await;

        // A job carrying hostile arguments, in Alpha's context: Alpha has nothing Expired, so
        // nothing is sent, to anyone.
        let in_alpha = NewJob::new(NOTIFY, Some(&scene.alpha), hostile.clone());
        assert_eq!(run_as_runtime(server, in_alpha).await.status, JobStatus::Completed);
        // Without an organization the job sends nothing and fails for good.
        assert_eq!(run_as_runtime(server, NewJob::new(NOTIFY, None, hostile.clone())).await.status, JobStatus::Failed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(smtp.messages().is_empty(), "mail sent: {:?}", smtp.messages());
        let expired_events: Vec<_> = server
            .publisher
            .events()
            .into_iter()
            .filter(|(event, ..)| event == "integration_expired")
            .collect();
        assert!(expired_events.is_empty(), "{expired_events:?}");
        let (beta_jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM job WHERE org_key = $1")
            .bind(&scene.beta)
            .fetch_one(server.app.db.pool())
            .await
            .unwrap();
        assert_eq!(beta_jobs, 0, "no job in Beta's name");

        // In Beta's own context, for its really Expired integration, Beta's admins get the
        // server's text and nothing of the arguments.
        let in_beta = NewJob::new(NOTIFY, Some(&scene.beta), hostile);
        assert_eq!(run_as_runtime(server, in_beta).await.status, JobStatus::Completed);
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "{mails:?}");
        let (recipients, data) = &mails[0];
        assert_eq!(recipients, &vec![BOB.to_string()]);
        assert!(data.contains("Subject: Reconnect Google for Beta"), "{data}");
        assert!(data.contains(&scene.beta), "{data}");
        for planted in ["everyone@example.com", "evil.example", "Urgent"] {
            assert!(!data.contains(planted), "{planted} in {data}");
        }
        scene.stop().await;
    }

    /// Members, Owners and even platform administrators try to enqueue the runtime's internal job
    /// types, for their organization and as system jobs: 403 each time, no job, no lane, no
    /// `jobs_enqueued_total` series; diagnostics stay open to members and unknown types are 422.
    async fn member_cannot_enqueue_internal_job_types(db) {
        let scene = Scene::on(TestServer::start_with(db, quick).await).await;
        let server = &scene.server;
        server.add_member(&scene.alpha, MALLORY, "Member").await;
        let admin = scene.admin.clone();
        let actors = [
            (MALLORY, scene.token(MALLORY)),
            (ALICE, scene.token(ALICE)),
            ("root@example.com", admin.clone()),
        ];
        let before = scene.snapshot().await;
        for method in INTERNAL_TYPES {
            for (who, token) in &actors {
                for organization in [json!(scene.alpha), Value::Null] {
                    let body = json!({"method": method, "organization": organization, "args": {}});
                    let reply = server.post(ENQUEUE, token, &body).await;
                    assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
                    assert!(
                        reply.json()["message"].as_str().unwrap().contains(method),
                        "{who}: {}",
                        reply.text
                    );
                }
            }
        }
        before.assert_unchanged(server, "refused internal enqueues").await;
        // System jobs are outside the snapshot: none of them came from these users.
        let (submitted,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM job WHERE submitted_by IN ($1, $2, $3)",
        )
        .bind(MALLORY)
        .bind(ALICE)
        .bind("root@example.com")
        .fetch_one(server.app.db.pool())
        .await
        .unwrap();
        assert_eq!(submitted, 0);
        let metrics = server.metrics().await;
        for method in INTERNAL_TYPES {
            let labelled = series(
                &metrics,
                "jobs_enqueued_total",
                &[format!("method=\"{method}\""), format!("org=\"{}\"", scene.alpha)],
            );
            assert!(labelled.is_empty(), "{labelled:?}");
        }

        // What members may do still works, and an unknown type is told apart.
        let noop = json!({"method": "core.noop", "organization": scene.alpha});
        let noop = enqueue_as(server, &scene.token(MALLORY), noop).await;
        assert_eq!(wait_until_final(server, &noop).await.status, JobStatus::Completed);
        let unknown = server
            .post(ENQUEUE, &scene.token(MALLORY), &json!({"method": "jobs.no_such_type", "organization": scene.alpha}))
            .await;
        assert_refused(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        scene.stop().await;
    }

    /// An Owner tries to re-run an internal job through the dead-letter queue of their
    /// organization: retrying is enqueueing, so the job type's policy refuses it and nothing changes.
    async fn owner_cannot_reenqueue_internal_job_types_through_dead_letters(db) {
        let scene = Scene::on(TestServer::start_with(db, quick).await).await;
        let server = &scene.server;
        // An internal job of Alpha that failed for good (no integration named).
        let no_integration = NewJob::new(NOTIFY, Some(&scene.alpha), json!({}));
        assert_eq!(run_as_runtime(server, no_integration).await.status, JobStatus::Failed);
        let letters = server
            .app
            .jobs
            .dead_letters(&runtime(), Some(&scene.alpha), 10)
            .await
            .unwrap();
        assert_eq!(letters.len(), 1);
        let before = scene.snapshot().await;
        let reply = server
            .post(RETRY_DEAD_LETTER, &scene.token(ALICE), &json!({"name": letters[0].name, "notes": "again"}))
            .await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
        before.assert_unchanged(server, "a refused dead-letter retry").await;
        // The Owner still settles it.
        let resolved = server
            .post(
                "/api/method/dartwing_core.jobs.resolve_dead_letter",
                &scene.token(ALICE),
                &json!({"name": letters[0].name}),
            )
            .await;
        assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.text);
        scene.stop().await;
    }

    /// Alpha floods the default queue's 8 workers with long jobs; Beta's no-op still runs at once,
    /// in the share of the slots owed to Beta, while Alpha's jobs run on; and while both wait,
    /// neither holds more than half of the slots.
    async fn flooding_org_cannot_hold_every_worker(db) {
        let scene = Scene::on(TestServer::start_with(db, quick).await).await;
        let server = &scene.server;
        let (alice, bob) = (scene.token(ALICE), scene.token(BOB));
        let alpha = scene.alpha.clone();
        const LONG_MS: u64 = 4_000;
        for _ in 0..16 {
            let sleep = json!({"method": "core.sleep", "organization": alpha, "args": {"ms": LONG_MS}});
            enqueue_as(server, &alice, sleep).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(server, &alpha, JobStatus::Running).await < 8 {
            assert!(Instant::now() < deadline, "Alpha alone never used every worker");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(count(server, &alpha, JobStatus::Running).await, 8, "alone, Alpha uses every slot");

        let sent = Instant::now();
        let noop = enqueue_as(server, &bob, json!({"method": "core.noop", "organization": scene.beta})).await;
        let info = wait_until_final(server, &noop).await;
        let waited = sent.elapsed();
        assert_eq!(info.status, JobStatus::Completed);
        assert!(
            waited < Duration::from_millis(LONG_MS / 2),
            "Beta's no-op waited {waited:?} behind Alpha's {LONG_MS} ms jobs"
        );
        assert_eq!(count(server, &alpha, JobStatus::Running).await, 8, "Alpha's jobs ran on");

        // Beta now wants long jobs too: it gets its half at once, and keeps the rest waiting.
        for _ in 0..6 {
            let sleep = json!({"method": "core.sleep", "organization": scene.beta, "args": {"ms": 20_000}});
            enqueue_as(server, &bob, sleep).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(server, &scene.beta, JobStatus::Running).await < 4 {
            assert!(Instant::now() < deadline, "Beta never got its share");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Once Alpha's first jobs end, Alpha refills only its own half while Beta waits.
        let deadline = Instant::now() + Duration::from_secs(20);
        while count(server, &alpha, JobStatus::Completed).await < 8 {
            assert!(Instant::now() < deadline, "Alpha's first jobs never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..10 {
            let a = count(server, &alpha, JobStatus::Running).await;
            let b = count(server, &scene.beta, JobStatus::Running).await;
            assert_eq!((a, b), (4, 4), "each organization holds half while the other waits");
            assert_eq!(count(server, &scene.beta, JobStatus::Queued).await, 2);
            assert_eq!(count(server, &alpha, JobStatus::Queued).await, 4);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        scene.stop().await;
    }

    /// The job table does not grow forever: finished jobs past `jobs.retention_days` are purged in
    /// batches by the scheduled, system-only `jobs.purge_finished`, counted in `jobs_purged_total`;
    /// unfinished and recent jobs stay, and so does a job its dead letter still refers to.
    async fn finished_jobs_are_purged_after_retention(db) {
        let server = TestServer::start_with(db, |c| {
            quick(c);
            c.jobs.queues.default.max_pending_per_org = None;
        })
        .await;
        let org = server.create_org(ALICE, "Alpha").await;
        let store = server.app.jobs.store();
        let pool = server.app.db.pool();
        // The scheduler registered the purge: its first tick is enqueued at start. Let it run
        // before there is anything to purge.
        let deadline = Instant::now() + Duration::from_secs(10);
        let scheduled = loop {
            let ids: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM job WHERE method = 'jobs.purge_finished' AND submitted_by = 'cron:jobs.purge_finished'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            if let [(id,)] = ids.as_slice() {
                break id.clone();
            }
            assert!(ids.is_empty() && Instant::now() < deadline, "cron purge jobs: {ids:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(wait_until_final(&server, &scheduled).await.status, JobStatus::Completed);
        let old = Timestamp::now().as_micros() - 31 * 86_400 * 1_000_000;
        let later = Timestamp::from_micros(Timestamp::now().as_micros() + 86_400 * 1_000_000);

        // 2,100 jobs that finished 31 days ago, a quarter in each final status (more than two
        // purge batches).
        let jobs: Vec<NewJob> = (0..2_100)
            .map(|_| {
                let mut job = NewJob::new("core.noop", Some(&org), json!({}));
                job.run_at = Some(later);
                job
            })
            .collect();
        let old_ids: Vec<String> = server
            .app
            .jobs
            .enqueue_many(&runtime(), jobs)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.job_id)
            .collect();
        for (i, status) in ["Completed", "Failed", "Canceled", "Timed Out"].into_iter().enumerate() {
            sqlx::query(
                "UPDATE job SET status = $1, finished_at_us = $2 WHERE org_key = $3 AND status = 'Pending' \
                 AND id IN (SELECT id FROM job WHERE org_key = $3 AND status = 'Pending' ORDER BY id LIMIT $4)",
            )
            .bind(status)
            .bind(old - i64::try_from(i).unwrap())
            .bind(&org)
            .bind(2_100 / 4)
            .execute(pool)
            .await
            .unwrap();
        }
        // Kept: a job still pending (enqueued 31 days ago), a job that finished just now, and an
        // old failed job whose dead letter is still there.
        let pending = server
            .app
            .jobs
            .enqueue(&runtime(), {
                let mut job = NewJob::new("core.noop", Some(&org), json!({}));
                job.run_at = Some(later);
                job
            })
            .await
            .unwrap()
            .job_id;
        sqlx::query("UPDATE job SET enqueued_at_us = $1 WHERE id = $2")
            .bind(old)
            .bind(&pending)
            .execute(pool)
            .await
            .unwrap();
        let recent = server
            .app
            .jobs
            .enqueue(&runtime(), NewJob::new("core.noop", Some(&org), json!({})))
            .await
            .unwrap()
            .job_id;
        let lettered = server
            .app
            .jobs
            .enqueue(&runtime(), NewJob::new("core.fail", Some(&org), json!({"permanent": true})))
            .await
            .unwrap()
            .job_id;
        assert_eq!(wait_until_final(&server, &recent).await.status, JobStatus::Completed);
        assert_eq!(wait_until_final(&server, &lettered).await.status, JobStatus::Failed);
        sqlx::query("UPDATE job SET finished_at_us = $1 WHERE id = $2")
            .bind(old)
            .bind(&lettered)
            .execute(pool)
            .await
            .unwrap();

        let purged_before = purged_total(&server).await;

        let purge = NewJob::new("jobs.purge_finished", None, json!({}));
        assert_eq!(run_as_runtime(&server, purge).await.status, JobStatus::Completed);
        for id in &old_ids {
            assert!(store.info(id).await.is_err(), "old finished job {id} kept");
        }
        assert_eq!(purged_total(&server).await - purged_before, 2_100.0);
        for id in [&pending, &recent, &lettered] {
            store.info(id).await.unwrap_or_else(|e| panic!("{id} purged: {e}"));
        }
        // The dead letter still leads to its job.
        let letter = store.dead_letters(Some(std::slice::from_ref(&org)), 10).await.unwrap().remove(0);
        assert_eq!(&letter.job_id, &lettered);
        let status = server
            .get(
                &format!("/api/method/dartwing_core.jobs.status?job_id={}", letter.job_id),
                &server.token(ALICE),
            )
            .await;
        assert_eq!(status.status, StatusCode::OK, "{}", status.text);
        assert_eq!(status.json()["message"]["status"], "Failed");

        // Once the letter is settled and itself purged, its job goes with the next purge.
        server
            .app
            .jobs
            .settle_dead_letter(&runtime(), &letter.name, DeadLetterStatus::Resolved, None)
            .await
            .unwrap();
        sqlx::query("UPDATE dead_letter SET failed_at_us = $1 WHERE id = $2")
            .bind(old)
            .bind(&letter.name)
            .execute(pool)
            .await
            .unwrap();
        for method in ["jobs.dlq_purge", "jobs.purge_finished"] {
            let purge = NewJob::new(method, None, json!({}));
            assert_eq!(run_as_runtime(&server, purge).await.status, JobStatus::Completed);
        }
        assert!(store.info(&lettered).await.is_err(), "the settled letter's job is purged");
        store.info(&pending).await.unwrap();
        store.info(&recent).await.unwrap();
        server.stop().await;
    }

    /// A Member subscribes to `room:system-alerts` (where `dlq_alert` goes) with the official JS
    /// client: refused with a reason, and no alert reaches the socket; a platform administrator's
    /// subscription succeeds and receives it.
    async fn member_cannot_join_system_rooms(db) {
        let server = TestServer::start_with(db, |c| {
            quick(c);
            c.jobs.dlq_alert_threshold = 1;
        })
        .await;
        let org = server.create_org(ALICE, "Alpha").await;
        server.add_member(&org, MALLORY, "Member").await;
        let mut agent = SocketAgent::start(ClientKind::Js).await;
        agent.connect("member", &server.base, &server.token(MALLORY)).await.unwrap();
        agent.connect("owner", &server.base, &server.token(ALICE)).await.unwrap();
        agent
            .connect("admin", &server.base, &server.admin_token("root@example.com"))
            .await
            .unwrap();
        for client in ["member", "owner"] {
            for room in ["room:system-alerts", "room:system-anything"] {
                let ack = agent.subscribe(client, room).await;
                assert_eq!(ack["ok"], json!(false), "{client} joined {room}: {ack}");
                assert!(
                    ack["error"].as_str().unwrap().contains("platform administrators"),
                    "{ack}"
                );
            }
            assert_eq!(agent.subscribe(client, "room:lobby").await, json!({"ok": true}));
        }
        assert_eq!(agent.subscribe("admin", "room:system-alerts").await, json!({"ok": true}));

        // A dead letter raises dlq_alert in the room.
        let failing = NewJob::new("core.fail", Some(&org), json!({"permanent": true}));
        assert_eq!(run_as_runtime(&server, failing).await.status, JobStatus::Failed);
        // The worker raises the alert just after it records the failure.
        let dlq_alerts = || {
            server
                .publisher
                .events()
                .into_iter()
                .filter(|(event, ..)| event == "dlq_alert")
                .collect::<Vec<_>>()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dlq_alerts().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let published = dlq_alerts();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].2, Target::Room("room:system-alerts".into()));
        let alerts = agent.wait_for("admin", "dlq_alert", 1, Duration::from_secs(10)).await;
        assert_eq!(alerts.len(), 1);
        assert_eq!((&alerts[0]["count"], &alerts[0]["dlq_depth"]), (&json!(1), &json!(1)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        for client in ["member", "owner"] {
            let (events, connected) = agent.events(client).await;
            assert!(connected);
            assert!(
                events.iter().all(|(event, _)| event != "dlq_alert"),
                "{client} received {events:?}"
            );
        }
        agent.stop().await;
        server.stop().await;
    }
}

async fn purged_total(server: &TestServer) -> f64 {
    let metrics = server.metrics().await;
    series(&metrics, "jobs_purged_total", &[])
        .first()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
