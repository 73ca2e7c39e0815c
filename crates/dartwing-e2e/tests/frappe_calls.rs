//! Frappe calling conventions on `/api/method`: the same procedures called the way Frappe's
//! Python client (`frappeclient`, through Python `requests`) and `frappe.call` send them — form
//! and multipart bodies whose values are JSON or text, query arguments on GET, `cmd`, the
//! trailing slash — with the JSON body's checks. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use async_trait::async_trait;
use dartwing_core::{Action, EnqueuePolicy};
use dartwing_e2e::TestServer;
use dartwing_e2e::sockets::{python, python_program};
use dartwing_jobs::{HandlerRegistry, JobContext, JobError, JobHandler};
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A job type a Member may enqueue; it records the arguments it ran with.
#[derive(Clone, Default)]
struct Report(Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl JobHandler for Report {
    async fn run(&self, _ctx: &JobContext, args: Value) -> Result<(), JobError> {
        self.0.lock().unwrap().push(args);
        Ok(())
    }
}

impl Report {
    /// The arguments of the first `count` runs, sorted by their text.
    async fn ran(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut seen = self.0.lock().unwrap().clone();
            if seen.len() >= count {
                seen.sort_by_key(Value::to_string);
                return seen;
            }
            assert!(Instant::now() < deadline, "only {} of {count} jobs ran", seen.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One call of the plan: style (`get`, `form`, `frappe.call`, `multipart`), procedure, arguments.
fn call(style: &str, method: &str, args: Value) -> Value {
    json!({ "style": style, "method": method, "args": args })
}

/// Runs `calls` through the Python client and returns `(status, body)` per call.
async fn frappe_calls(server: &TestServer, token: &str, calls: Vec<Value>) -> Vec<(u16, Value)> {
    let plan = json!({ "base_url": server.url(""), "authorization": format!("Bearer {token}"), "calls": calls });
    let mut child = tokio::process::Command::new(python())
        .arg(python_program("frappe_calls.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(plan.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "frappe_calls.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON results");
    results
        .into_iter()
        .map(|r| (r["status"].as_u64().unwrap() as u16, r["body"].clone()))
        .collect()
}

fn count_jobs(list: &Value) -> usize {
    list["message"].as_array().map(Vec::len).unwrap_or_default()
}

/// The job ids of a `jobs.list` answer, sorted (their statuses move while the jobs run).
fn job_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["message"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

dartwing_e2e::backend_tests! {
    async fn frappe_style_calls_reach_the_same_procedures_with_the_same_checks(db) {
        let mut handlers = HandlerRegistry::new();
        let report = Report::default();
        handlers.register_with("report.build", EnqueuePolicy::Members(Action::Write), report.clone());
        let server = TestServer::start_full(db, |_| {}, handlers, Arc::default()).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let token = server.token("owner@example.com");
        const ENQUEUE: &str = "dartwing_core.jobs.enqueue";
        const STATUS: &str = "dartwing_core.jobs.status";
        const LIST: &str = "dartwing_core.jobs.list";
        const CANCEL: &str = "dartwing_core.jobs.cancel";
        const UPSERT: &str = "dartwing_core.sync.upsert_batch";
        const FEED: &str = "dartwing_core.sync.feed";

        let results = frappe_calls(&server, &token, vec![
            // 0: frappeclient.post_api: a form whose `args` is JSON text and `priority` plain text.
            call("form", ENQUEUE, json!({
                "method": "report.build", "organization": org, "args": {"pages": 3, "title": "Q1"}, "priority": "High",
            })),
            // 1: multipart text fields; this one waits, to be cancelled.
            call("multipart", ENQUEUE, json!({
                "method": "report.build", "organization": org, "args": {"pages": 1}, "run_at": "2099-01-01T00:00:00Z",
            })),
            // 2: frappe.call (POST form with `cmd`) of a read.
            call("frappe.call", LIST, json!({ "organization": org, "limit": 10 })),
            // 3: frappeclient.get_api of the same read.
            call("get", LIST, json!({ "organization": org, "limit": "10" })),
            // 4: sync through a form: `items` is JSON text.
            call("form", UPSERT, json!({ "org": org, "items": [{
                "op_id": "op-form-1", "op": "insert", "doctype": "Task", "name": "TASK-FORM-1",
                "data": {"title": "From a form", "status": "Open"}, "client_ts": "2026-01-01T00:00:00Z",
            }]})),
            // 5: the feed through GET.
            call("get", FEED, json!({ "org": org, "doctype": "Task", "limit": 50 })),
            // 6: the feed through frappe.call.
            call("frappe.call", FEED, json!({ "org": org, "doctype": "Task" })),
        ]).await;
        for (i, (status, body)) in results.iter().enumerate() {
            assert_eq!(*status, 200, "call {i}: {body}");
        }
        let first = results[0].1["message"]["job_id"].as_str().unwrap().to_string();
        let second = results[1].1["message"]["job_id"].as_str().unwrap().to_string();
        assert_eq!(
            report.ran(1).await,
            [json!({"pages": 3, "title": "Q1"})],
            "the JSON text of a form value became the job's object"
        );
        let waiting = server.app.jobs.store().info(&second).await.unwrap();
        assert_eq!((waiting.method.as_str(), waiting.status.as_str()), ("report.build", "Pending"));
        assert_eq!(count_jobs(&results[2].1), 2, "{}", results[2].1);
        assert_eq!(job_ids(&results[2].1), job_ids(&results[3].1), "GET and frappe.call read the same list");
        assert_eq!(results[4].1["message"][0]["status"], "applied", "{}", results[4].1);
        for page in [&results[5].1, &results[6].1] {
            let rows = page["message"]["rows"].as_array().unwrap();
            assert!(
                rows.iter().any(|r| r["name"] == "TASK-FORM-1" && r["data"]["title"] == "From a form"),
                "{page}"
            );
        }
        let status = frappe_calls(&server, &token, vec![
            call("get", STATUS, json!({ "job_id": first })),
            call("frappe.call", STATUS, json!({ "job_id": first })),
            call("form", CANCEL, json!({ "job_id": second })),
        ]).await;
        assert_eq!(status[0].0, 200, "{}", status[0].1);
        assert_eq!(status[0].1["message"]["job_id"], first.as_str());
        assert_eq!(status[1].0, 200, "{}", status[1].1);
        assert_eq!(status[1].1["message"]["job_id"], first.as_str());
        assert_eq!(status[2].0, 200, "{}", status[2].1);

        // The JSON body's checks hold for forms and queries, and a refused call stores nothing.
        let refused = frappe_calls(&server, &token, vec![
            // 0: a number that is not one, named.
            call("get", LIST, json!({ "organization": org, "limit": "many" })),
            // 1: an unknown argument.
            call("form", ENQUEUE, json!({ "method": "report.build", "organization": org, "colour": "red" })),
            // 2: an argument given twice.
            call("form", ENQUEUE, json!([["method", "report.build"], ["organization", org], ["organization", "other"]])),
            // 3: a list that is not JSON.
            call("form", UPSERT, json!({ "org": org, "items": "not a list" })),
            // 4: a state-changing procedure is not served on GET.
            call("get", ENQUEUE, json!({ "method": "report.build", "organization": org })),
            // 5: another organization's jobs, through a form.
            call("frappe.call", LIST, json!({ "organization": "ORG-NOT-MINE" })),
        ]).await;
        let expect = [400, 400, 400, 400, 405, 403];
        for (i, ((status, body), want)) in refused.iter().zip(expect).enumerate() {
            assert_eq!(*status, want, "refused call {i}: {body}");
            assert!(body["exc_type"].is_string() && body["message"].is_string(), "call {i}: {body}");
        }
        assert!(refused[0].1["message"].as_str().unwrap().contains("`limit`"), "{}", refused[0].1);
        assert!(refused[1].1["message"].as_str().unwrap().contains("colour"), "{}", refused[1].1);
        assert!(refused[2].1["message"].as_str().unwrap().contains("more than once"), "{}", refused[2].1);
        assert!(refused[3].1["message"].as_str().unwrap().contains("`items`"), "{}", refused[3].1);
        // Nothing refused was stored: the organization still has its two jobs.
        let after = frappe_calls(&server, &token, vec![call("get", LIST, json!({ "organization": org }))]).await;
        assert_eq!(count_jobs(&after[0].1), 2, "{}", after[0].1);
        server.stop().await;
    }
}

/// A node whose workers poll every 20 ms and record successes every 2 ms, with `handlers`.
async fn quick_server(
    db: &dartwing_e2e::TestDatabase,
    handlers: HandlerRegistry,
    adjust: impl FnOnce(&mut dartwing_core::config::Config),
) -> TestServer {
    let quick = |c: &mut dartwing_core::config::Config| {
        c.jobs.poll_interval_ms = 20;
        c.jobs.completion_flush_ms = 2;
        adjust(c);
    };
    TestServer::start_full(db, quick, handlers, Arc::default()).await
}

/// `pdf_generation` of the contract's examples: reports progress, then succeeds.
struct PdfGeneration;

#[async_trait]
impl JobHandler for PdfGeneration {
    async fn run(&self, ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        ctx.progress(45.0, "Processing page 5 of 11...").await?;
        ctx.output_reference("/files/report-2025-001.pdf").await?;
        Ok(())
    }
}

/// `fax_send` of the contract's examples: a permanent failure, straight to the dead-letter queue.
struct FaxSend;

#[async_trait]
impl JobHandler for FaxSend {
    async fn run(&self, _ctx: &JobContext, _args: Value) -> Result<(), JobError> {
        Err(JobError::Permanent("Invalid fax number format".into()))
    }
}

/// A `pdf_generation` job of `org` that waits (its `run_at` is far away); its id.
async fn waiting_job(server: &TestServer, token: &str, org: &str) -> String {
    let reply = server
        .post(
            "/api/method/dartwing_core.jobs.enqueue",
            token,
            &json!({"method": "pdf_generation", "organization": org, "run_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(reply.status, reqwest::StatusCode::OK, "{}", reply.text);
    reply.json()["message"]["job_id"].as_str().unwrap().to_string()
}

/// Polls `get_job_status` until `status`.
async fn status_until(server: &TestServer, token: &str, job_id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = frappe_calls(
            server,
            token,
            vec![call("get", JOB_STATUS, json!({ "job_id": job_id }))],
        )
        .await;
        let (code, body) = reply.into_iter().next().unwrap();
        assert_eq!(code, 200, "{body}");
        if body["message"]["status"] == status {
            return body["message"].clone();
        }
        assert!(Instant::now() < deadline, "job {job_id} never reached {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SUBMIT: &str = "dartwing.dartwing_core.api.jobs.submit_job";
const JOB_STATUS: &str = "dartwing.dartwing_core.api.jobs.get_job_status";
const LIST_JOBS: &str = "dartwing.dartwing_core.api.jobs.list_jobs";
const CANCEL_JOB: &str = "dartwing.dartwing_core.api.jobs.cancel_job";
const RETRY_JOB: &str = "dartwing.dartwing_core.api.jobs.retry_job";

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

dartwing_e2e::backend_tests! {
    async fn the_frappe_job_api_answers_in_the_contracts_shapes(db) {
        let mut handlers = HandlerRegistry::new();
        handlers
            .register_with("pdf_generation", EnqueuePolicy::Members(Action::Write), PdfGeneration)
            .register_with("fax_send", EnqueuePolicy::Members(Action::Write), FaxSend);
        let server = quick_server(db, handlers, |_| {}).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let other = server.create_org("stranger@example.com", "Other").await;
        let token = server.token("owner@example.com");
        let parameters = json!({"template": "monthly_report", "date_range": ["2025-01-01", "2025-01-31"]});

        // 1. Submit Job: the contract's request as frappeclient posts it, then the same again.
        let submit = json!({"job_type": "pdf_generation", "organization": org, "parameters": parameters, "priority": "Normal", "depends_on": null});
        let answers = frappe_calls(&server, &token, vec![
            call("form", SUBMIT, submit.clone()),
            call("form", SUBMIT, submit.clone()),
            call("form", SUBMIT, json!({"job_type": "unknown_type", "organization": org})),
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": org, "depends_on": "JOB-1"})),
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": "ORG-NOT-MINE"})),
        ]).await;
        let (code, first) = &answers[0];
        assert_eq!(*code, 200, "{first}");
        assert_eq!(keys(&first["message"]), ["job_id", "message", "status"]);
        assert_eq!(first["message"]["message"], "Job submitted successfully");
        assert_eq!(first["message"]["status"], "Queued", "the status it was stored with");
        let job_id = first["message"]["job_id"].as_str().unwrap().to_string();
        let (code, duplicate) = &answers[1];
        assert_eq!(*code, 409, "{duplicate}");
        assert_eq!(keys(&duplicate["message"]), ["error", "existing_job_id", "status"]);
        assert_eq!(duplicate["message"]["error"], "Duplicate job detected");
        assert_eq!(duplicate["message"]["existing_job_id"], job_id.as_str());
        let (code, unknown) = &answers[2];
        assert_eq!((*code, &unknown["exc_type"]), (400, &json!("ValidationError")), "{unknown}");
        assert_eq!(unknown["message"], "Invalid job type: unknown_type");
        assert_eq!(answers[3].0, 400, "{}", answers[3].1);
        assert_eq!(answers[4].0, 403, "{}", answers[4].1);
        assert_eq!(answers[4].1["exc_type"], "PermissionError");

        // 2. Get Job Status, once completed.
        let done = status_until(&server, &token, &job_id, "Completed").await;
        for key in ["job_id", "job_type", "status", "progress", "progress_message", "created_at", "started_at",
                    "completed_at", "retry_count", "output_reference"] {
            assert!(done.get(key).is_some(), "{key} missing: {done}");
        }
        assert_eq!(done["job_type"], "pdf_generation");
        assert_eq!((done["progress"].as_f64(), &done["progress_message"]), (Some(45.0), &json!("Processing page 5 of 11...")));
        assert_eq!(done["retry_count"], 0);
        assert!(done["completed_at"].is_string(), "{done}");
        assert_eq!(done["output_reference"], "/files/report-2025-001.pdf", "{done}");

        // A failed job: Dead Letter with its error, then retry_job.
        let fax = frappe_calls(&server, &token, vec![
            call("form", SUBMIT, json!({"job_type": "fax_send", "organization": org, "parameters": {"to": "+1-INVALID"}})),
        ]).await;
        let fax_id = fax[0].1["message"]["job_id"].as_str().unwrap().to_string();
        let dead = status_until(&server, &token, &fax_id, "Dead Letter").await;
        assert_eq!((&dead["error_message"], &dead["error_type"]), (&json!("Invalid fax number format"), &json!("Permanent")));

        // 3. List Jobs, 4. Cancel Job, 5. Retry Job.
        let answers = frappe_calls(&server, &token, vec![
            call("get", LIST_JOBS, json!({"organization": org, "limit": 1, "offset": 0})),
            call("get", LIST_JOBS, json!({"organization": org, "status": "Dead Letter", "job_type": "fax_send"})),
            call("form", CANCEL_JOB, json!({"job_id": job_id})),
            call("form", RETRY_JOB, json!({"job_id": fax_id})),
            call("form", RETRY_JOB, json!({"job_id": job_id})),
            call("get", LIST_JOBS, json!({"organization": "ORG-NOT-MINE"})),
            call("get", JOB_STATUS, json!({"job_id": "JOB-DOES-NOT-EXIST"})),
        ]).await;
        let (code, page) = &answers[0];
        assert_eq!(*code, 200, "{page}");
        assert_eq!(keys(&page["message"]), ["jobs", "limit", "offset", "total"]);
        assert_eq!((&page["message"]["total"], &page["message"]["limit"]), (&json!(2), &json!(1)));
        assert_eq!(page["message"]["jobs"].as_array().unwrap().len(), 1);
        assert_eq!(keys(&page["message"]["jobs"][0]), ["created_at", "job_id", "job_type", "organization", "progress", "status"]);
        let dead_letters = answers[1].1["message"]["jobs"].as_array().unwrap();
        assert_eq!(dead_letters.len(), 1, "{}", answers[1].1);
        assert_eq!((&dead_letters[0]["job_id"], &dead_letters[0]["status"]), (&json!(fax_id), &json!("Dead Letter")));
        let (code, cancel) = &answers[2];
        assert_eq!((*code, &cancel["exc_type"]), (400, &json!("ValidationError")), "{cancel}");
        assert_eq!(cancel["message"], "Cannot cancel job in status: Completed");
        let (code, retried) = &answers[3];
        assert_eq!(*code, 200, "{retried}");
        assert_eq!((&retried["message"]["status"], &retried["message"]["message"]), (&json!("Queued"), &json!("Job re-queued for execution")));
        assert_eq!(answers[4].0, 400, "a completed job is not in the dead-letter queue: {}", answers[4].1);
        assert_eq!(answers[5].0, 403, "{}", answers[5].1);
        assert_eq!((answers[6].0, &answers[6].1["exc_type"]), (404, &json!("DoesNotExistError")), "{}", answers[6].1);

        // 6. Get Job Metrics.
        const METRICS: &str = "dartwing.dartwing_core.api.jobs.get_job_metrics";
        let answers = frappe_calls(&server, &token, vec![
            call("get", METRICS, json!({"organization": org})),
            call("get", METRICS, json!({"organization": "ORG-NOT-MINE"})),
        ]).await;
        let (code, metrics) = &answers[0];
        assert_eq!(*code, 200, "{metrics}");
        let metrics = &metrics["message"];
        assert_eq!(
            keys(metrics),
            ["failure_rate_by_type", "job_count_by_status", "processing_time", "queue_depth_by_priority", "timestamp", "window_hours"]
        );
        assert_eq!(
            keys(&metrics["job_count_by_status"]),
            ["Canceled", "Completed", "Dead Letter", "Failed", "Pending", "Queued", "Running"]
        );
        assert_eq!(metrics["job_count_by_status"]["Completed"], 1, "{metrics}");
        assert!(metrics["job_count_by_status"]["Dead Letter"].as_i64().unwrap() >= 1, "{metrics}");
        assert_eq!(keys(&metrics["queue_depth_by_priority"]), ["Critical", "High", "Low", "Normal"]);
        assert_eq!(metrics["failure_rate_by_type"]["pdf_generation"], 0.0, "{metrics}");
        assert_eq!(metrics["failure_rate_by_type"]["fax_send"], 1.0, "{metrics}");
        assert!(metrics["processing_time"]["average_seconds"].as_f64().is_some_and(|s| s >= 0.0), "{metrics}");
        assert!(metrics["processing_time"]["p95_seconds"].as_f64().is_some(), "{metrics}");
        assert_eq!(answers[1].0, 403, "{}", answers[1].1);

        // A member of another organization: this organization's jobs do not exist for them, a
        // dependency on one reads as not found, and the same submission in their own
        // organization is not a duplicate of this one's.
        let stranger = server.token("stranger@example.com");
        let answers = frappe_calls(&server, &stranger, vec![
            call("get", JOB_STATUS, json!({"job_id": job_id})),
            call("form", CANCEL_JOB, json!({"job_id": job_id})),
            call("form", RETRY_JOB, json!({"job_id": fax_id})),
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": other, "parameters": parameters})),
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": other, "depends_on": job_id, "parameters": {"n": 9}})),
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": other, "depends_on": "JOB-NONE", "parameters": {"n": 9}})),
        ]).await;
        for (i, (code, body)) in answers[..3].iter().enumerate() {
            assert_eq!((*code, &body["exc_type"]), (404, &json!("DoesNotExistError")), "call {i}: {body}");
        }
        assert_eq!(answers[3].0, 200, "not a duplicate across organizations: {}", answers[3].1);
        assert_ne!(answers[3].1["message"]["job_id"], job_id.as_str());
        assert_eq!(answers[4].0, 400, "{}", answers[4].1);
        assert_eq!(
            answers[4].1["message"].as_str().unwrap().replace(&job_id, "JOB"),
            answers[5].1["message"].as_str().unwrap().replace("JOB-NONE", "JOB"),
            "a foreign parent reads exactly like one that does not exist"
        );
        let job = server.app.jobs.store().info(&job_id).await.unwrap();
        assert_eq!(job.status.as_str(), "Completed", "the stranger's cancel changed nothing");

        // Cancel a job that waits.
        let waiting = waiting_job(&server, &token, &org).await;
        let canceled = frappe_calls(&server, &token, vec![call("frappe.call", CANCEL_JOB, json!({"job_id": waiting}))]).await;
        assert_eq!(canceled[0].0, 200, "{}", canceled[0].1);
        assert_eq!(
            canceled[0].1["message"],
            json!({"job_id": waiting, "status": "Canceled", "message": "Job canceled successfully"})
        );
        server.stop().await;
    }
}

dartwing_e2e::backend_tests! {
    async fn job_types_are_configured_and_listed(db) {
        let mut handlers = HandlerRegistry::new();
        handlers.register_with("pdf_generation", EnqueuePolicy::Members(Action::Write), PdfGeneration);
        let server = quick_server(
            db,
            handlers,
            |c| {
                c.jobs.job_types.insert(
                    "pdf_generation".into(),
                    dartwing_core::config::JobTypeConfig {
                        description: Some("Monthly report as PDF".into()),
                        queue: Some(dartwing_jobs::model::Queue::Critical),
                        timeout_secs: Some(5),
                        retries: Some(0),
                        dedup_window_secs: Some(60),
                        submit: Some(dartwing_core::config::SubmitRule::Admins),
                    },
                );
                c.jobs.job_types.insert(
                    "ocr_processing".into(),
                    dartwing_core::config::JobTypeConfig { description: Some("not on this node".into()), ..Default::default() },
                );
            },
        )
        .await;
        let org = server.create_org("owner@example.com", "Acme").await;
        server.add_member(&org, "member@example.com", "Member").await;
        let owner = server.token("owner@example.com");
        let member = server.token("member@example.com");

        let listed = frappe_calls(&server, &member, vec![call("get", "dartwing_core.jobs.job_types", json!({}))]).await;
        assert_eq!(listed[0].0, 200, "{}", listed[0].1);
        let types = listed[0].1["message"].as_array().unwrap().clone();
        let pdf = types.iter().find(|t| t["name"] == "pdf_generation").unwrap();
        assert_eq!(
            (&pdf["queue"], &pdf["timeout_secs"], &pdf["max_retries"], &pdf["dedup_window_secs"], &pdf["available"]),
            (&json!("critical"), &json!(5), &json!(0), &json!(60), &json!(true)),
            "{pdf}"
        );
        assert_eq!(pdf["submit"], "Owners and Admins of the organization");
        assert_eq!(pdf["description"], "Monthly report as PDF");
        let ocr = types.iter().find(|t| t["name"] == "ocr_processing").unwrap();
        assert_eq!(ocr["available"], false, "{ocr}");
        assert!(types.iter().any(|t| t["name"] == "core.noop"), "registered types are listed too");

        // Who may submit: the configured rule, not the registration's.
        let submit = json!({"job_type": "pdf_generation", "organization": org, "parameters": {"month": 1}});
        let answers = frappe_calls(&server, &member, vec![call("form", SUBMIT, submit.clone())]).await;
        assert_eq!(answers[0].0, 403, "a Member may not submit an Admins type: {}", answers[0].1);
        let answers = frappe_calls(&server, &owner, vec![
            call("form", SUBMIT, submit),
            call("form", SUBMIT, json!({"job_type": "ocr_processing", "organization": org})),
        ]).await;
        assert_eq!(answers[0].0, 200, "{}", answers[0].1);
        assert_eq!(answers[1].0, 400, "a configured type without a handler: {}", answers[1].1);
        let job_id = answers[0].1["message"]["job_id"].as_str().unwrap().to_string();
        let job = status_until(&server, &owner, &job_id, "Completed").await;
        assert_eq!(job["max_retries"], 0, "{job}");
        assert_eq!(server.app.jobs.store().info(&job_id).await.unwrap().queue.as_str(), "critical");
        server.stop().await;
    }
}

dartwing_e2e::backend_tests! {
    async fn a_dependent_job_waits_for_its_parent_and_is_canceled_when_the_parent_does_not_complete(db) {
        let mut handlers = HandlerRegistry::new();
        handlers.register_with("pdf_generation", EnqueuePolicy::Members(Action::Write), PdfGeneration);
        let server = quick_server(db, handlers, |_| {}).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let token = server.token("owner@example.com");
        let answers = frappe_calls(&server, &token, vec![
            call("form", SUBMIT, json!({"job_type": "core.sleep", "organization": org, "parameters": {"ms": 600}})),
        ]).await;
        let parent = answers[0].1["message"]["job_id"].as_str().unwrap().to_string();
        let answers = frappe_calls(&server, &token, vec![
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": org, "depends_on": parent})),
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": org, "depends_on": "nope", "parameters": {"n": 2}})),
        ]).await;
        assert_eq!(answers[0].0, 200, "{}", answers[0].1);
        assert_eq!(answers[0].1["message"]["status"], "Pending", "waits for its parent: {}", answers[0].1);
        let child = answers[0].1["message"]["job_id"].as_str().unwrap().to_string();
        assert_eq!((answers[1].0, &answers[1].1["exc_type"]), (400, &json!("ValidationError")), "{}", answers[1].1);
        let done = status_until(&server, &token, &child, "Completed").await;
        let parent_done = status_until(&server, &token, &parent, "Completed").await;
        let at = |v: &Value| v.as_str().unwrap().parse::<dartwing_core::Timestamp>().unwrap();
        assert!(
            at(&done["started_at"]) >= at(&parent_done["completed_at"]),
            "the child started after its parent completed: {done} {parent_done}"
        );

        // A parent that will not complete: canceled while waiting, and its dependent with it.
        let waiting_parent = waiting_job(&server, &token, &org).await;
        let answers = frappe_calls(&server, &token, vec![
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": org, "depends_on": waiting_parent, "parameters": {"n": 3}})),
            call("form", CANCEL_JOB, json!({"job_id": waiting_parent})),
        ]).await;
        assert_eq!(answers[0].0, 200, "{}", answers[0].1);
        assert_eq!(answers[1].0, 200, "{}", answers[1].1);
        let orphan = answers[0].1["message"]["job_id"].as_str().unwrap().to_string();
        let canceled = status_until(&server, &token, &orphan, "Canceled").await;
        assert!(canceled["completed_at"].is_string(), "{canceled}");
        // A parent that already ended unsuccessfully is refused at once.
        let refused = frappe_calls(&server, &token, vec![
            call("form", SUBMIT, json!({"job_type": "pdf_generation", "organization": org, "depends_on": waiting_parent, "parameters": {"n": 4}})),
        ]).await;
        assert_eq!(refused[0].0, 400, "{}", refused[0].1);
        assert!(refused[0].1["message"].as_str().unwrap().contains("ended Canceled"), "{}", refused[0].1);
        server.stop().await;
    }
}

/// The Python job client of `contrib/frappe` (`dartwing_core.jobs`) against the real server.
const PYTHON_CLIENT: &str = r#"
import os
from dartwing_core import jobs
org = os.environ["ORG"]
job = jobs.submit_job("pdf_generation", org, {"month": 1})
assert job["status"] in ("Queued", "Pending"), job
done = jobs.wait_for(job["job_id"], timeout=20, interval=0.05)
assert done["status"] == "Completed", done
assert done["output_reference"] == "/files/report-2025-001.pdf", done
try:
    jobs.submit_job("pdf_generation", org, {"month": 1})
    raise SystemExit("a duplicate was accepted")
except jobs.DuplicateJob as duplicate:
    assert duplicate.existing_job_id == job["job_id"], duplicate.existing_job_id
try:
    jobs.submit_job("unknown_type", org)
    raise SystemExit("an unknown job type was accepted")
except jobs.DartwingJobError as refused:
    assert (refused.status, refused.exc_type) == (400, "ValidationError"), refused
listed = jobs.list_jobs(organization=org)
assert listed["total"] == 1 and listed["jobs"][0]["job_id"] == job["job_id"], listed
print("ok")
"#;

dartwing_e2e::backend_tests! {
    async fn the_python_job_client_submits_and_follows_jobs(db) {
        let mut handlers = HandlerRegistry::new();
        handlers.register_with("pdf_generation", EnqueuePolicy::Members(Action::Write), PdfGeneration);
        let server = quick_server(db, handlers, |_| {}).await;
        let org = server.create_org("owner@example.com", "Acme").await;
        let contrib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/frappe");
        let output = tokio::process::Command::new(python())
            .current_dir(&contrib)
            .env("DARTWING_URL", server.url(""))
            .env("DARTWING_AUTHORIZATION", format!("Bearer {}", server.token("owner@example.com")))
            .env("ORG", &org)
            .args(["-c", PYTHON_CLIENT])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok",
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        server.stop().await;
    }
}
