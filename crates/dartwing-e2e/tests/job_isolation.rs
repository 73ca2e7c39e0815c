//! Jobs run only in their own organization's context, are enqueued only by whom their type
//! admits, share the workers so that no organization holds them all, and do not pile up forever;
//! platform rooms are for platform administrators. Each scenario is an attack refused, on SQLite
//! and PostgreSQL, with proof that nothing changed and nothing was sent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::Principal;
use dartwing_core::publish::Target;
use dartwing_e2e::TestServer;
use dartwing_e2e::scenario::ALICE;
use dartwing_e2e::sockets::{ClientKind, SocketAgent};
use dartwing_jobs::model::{JobInfo, JobStatus, NewJob};
use serde_json::json;
use std::time::{Duration, Instant};

/// A Member (not an Admin) of Alpha.
const MALLORY: &str = "mallory@example.com";

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

dartwing_e2e::backend_tests! {
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
        let published: Vec<_> = server
            .publisher
            .events()
            .into_iter()
            .filter(|(event, ..)| event == "dlq_alert")
            .collect();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].2, Target::Room("room:system-alerts".into()));
        let alerts = agent.wait_for("admin", "dlq_alert", 1, Duration::from_secs(10)).await;
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["dlq_depth"], 1);
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
