//! Offline sync (SPEC §7 test matrix and issue scenarios), on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::config::{Config, ConflictStrategy, DocTypeStrategy};
use dartwing_core::publish::Target;
use dartwing_core::{Principal, Timestamp};
use dartwing_db::Backend;
use dartwing_e2e::{TestDatabase, TestServer, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const UPSERT: &str = "/api/method/dartwing_core.sync.upsert_batch";
const FEED: &str = "/api/method/dartwing_core.sync.feed";
const CONFLICTS: &str = "/api/method/dartwing_core.sync.conflicts";
const OWNER: &str = "owner@example.com";

struct Site {
    server: TestServer,
    org: String,
    token: String,
}

async fn site(db: &TestDatabase) -> Site {
    site_with(db, |_| {}).await
}

async fn site_with(db: &TestDatabase, adjust: impl FnOnce(&mut Config)) -> Site {
    let server = TestServer::start_with(db, adjust).await;
    let org = server.create_org(OWNER, "Acme").await;
    let token = server.token(OWNER);
    Site { server, org, token }
}

fn now() -> String {
    Timestamp::now().to_string()
}

fn op(op_id: &str, op: &str, doctype: &str, name: &str, data: Value, base: Option<&str>) -> Value {
    let mut item = json!({
        "op_id": op_id, "op": op, "doctype": doctype, "name": name, "data": data, "client_ts": now(),
    });
    if let Some(base) = base {
        item["base_modified"] = json!(base);
    }
    item
}

impl Site {
    async fn upsert_as(&self, token: &str, items: Vec<Value>) -> dartwing_e2e::Reply {
        self.server
            .post(UPSERT, token, &json!({ "org": self.org, "items": items }))
            .await
    }

    /// Upserts and returns the per-item answers (asserting 200).
    async fn upsert(&self, items: Vec<Value>) -> Vec<Value> {
        let reply = self.upsert_as(&self.token, items).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["message"].as_array().unwrap().clone()
    }

    /// Upserts one item and returns its answer.
    async fn one(&self, item: Value) -> Value {
        self.upsert(vec![item]).await.remove(0)
    }

    /// Inserts `name` with `data`, then changes it on the "server side" (another writer with the
    /// right base) with `server_change`; returns the `modified` the client based its work on.
    async fn diverge(&self, doctype: &str, name: &str, data: Value, server_change: Value) -> String {
        let inserted = self.one(op(&unique("op-"), "insert", doctype, name, data, None)).await;
        assert_eq!(inserted["status"], "applied", "{inserted}");
        let base = inserted["server_ts"].as_str().unwrap().to_string();
        let other = self
            .one(op(&unique("op-"), "update", doctype, name, server_change, Some(&base)))
            .await;
        assert_eq!(other["status"], "applied", "{other}");
        base
    }

    async fn feed(&self, params: &str) -> dartwing_e2e::Reply {
        self.server
            .get(&format!("{FEED}?org={}&{params}", self.org), &self.token)
            .await
    }

    /// Every row of the feed (optionally of one DocType), following `next_since`.
    async fn feed_all(&self, doctype: Option<&str>, limit: u32) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut since = String::new();
        loop {
            let mut params = format!("limit={limit}&since={since}");
            if let Some(d) = doctype {
                params.push_str(&format!("&doctype={}", urlencoding::encode(d)));
            }
            let reply = self.feed(&params).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let page = reply.json()["message"].clone();
            rows.extend(page["rows"].as_array().unwrap().iter().cloned());
            since = page["next_since"].as_str().unwrap().to_string();
            if !page["has_more"].as_bool().unwrap() {
                return rows;
            }
        }
    }

    /// The stored document: (data, deleted, version).
    async fn stored(&self, doctype: &str, name: &str) -> Option<(Value, bool, i64)> {
        let row = sqlx::query("SELECT data, deleted, version FROM sync_document WHERE doctype = $1 AND name = $2")
            .bind(doctype)
            .bind(name)
            .fetch_optional(self.server.app.db.pool())
            .await
            .unwrap()?;
        let data: String = row.try_get(0).unwrap();
        Some((
            serde_json::from_str(&data).unwrap(),
            row.try_get::<i64, _>(1).unwrap() != 0,
            row.try_get(2).unwrap(),
        ))
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.server.app.db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }
}

dartwing_e2e::backend_tests! {
    async fn the_feed_starts_after_a_time_and_items_may_come_without_op_id(db) {
        let s = site(db).await;
        // The sync spec's item shape: no op_id.
        let item = |name: &str| json!({
            "doctype": "Task", "name": name, "data": {"title": name}, "client_ts": now(), "op": "insert",
        });
        let first = s.one(item("T-EARLY")).await;
        assert_eq!(first["status"], "applied", "{first}");
        assert!(first["op_id"].is_null(), "{first}");
        let early = first["server_ts"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let later = s.one(item("T-LATER")).await;
        assert_eq!(later["status"], "applied", "{later}");

        let names = |page: &Value| -> Vec<String> {
            page["message"]["rows"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
        };
        // RFC 3339 and Frappe's `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) name the same time.
        let frappe_form = early.trim_end_matches('Z').replacen('T', " ", 1);
        for since in [early.clone(), frappe_form] {
            let reply = s.feed(&format!("since={}", urlencoding::encode(&since))).await;
            assert_eq!(reply.status, StatusCode::OK, "{since}: {}", reply.text);
            assert_eq!(names(&reply.json()), ["T-LATER"], "{since}");
        }
        let all = s.feed("since=2000-01-01T00:00:00Z").await.json();
        assert_eq!(names(&all), ["T-EARLY", "T-LATER"]);
        // A time after every change: nothing yet, and its watermark continues with what comes next.
        let future = s.feed("since=2999-01-01T00:00:00Z").await.json();
        assert!(names(&future).is_empty());
        let next = future["message"]["next_since"].as_str().unwrap().to_string();
        s.one(item("T-NEXT")).await;
        assert_eq!(names(&s.feed(&format!("since={next}")).await.json()), ["T-NEXT"]);
        for bad in ["yesterday", "2026-01-31", "2026-13-01%2010:00:00"] {
            let reply = s.feed(&format!("since={bad}")).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.text);
            assert_eq!(reply.json()["exc_type"], "InvalidWatermarkError");
        }
        // Without an op_id a write is not remembered: the same insert sent again is decided again
        // (with an op_id the replay would get the first answer back).
        let insert = item("T-TWICE");
        let once = s.one(insert.clone()).await;
        assert_eq!(once["status"], "applied", "{once}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let twice = s.one(insert).await;
        assert_ne!(once, twice, "decided again, not the stored answer");
        s.server.stop().await;
    }

    async fn offline_create_update_delete_replayed_in_order_and_twice_gives_identical_answers(db) {
        let s = site(db).await;
        let batch = vec![
            op(
                "q-1",
                "insert",
                "Task",
                "TASK-LOCAL-1",
                json!({"title": "Buy milk", "status": "Open"}),
                None,
            ),
            op("q-2", "update", "Task", "TASK-LOCAL-1", json!({"status": "Done"}), None),
            op("q-3", "insert", "Task", "TASK-LOCAL-2", json!({"title": "Typo"}), None),
            op("q-4", "delete", "Task", "TASK-LOCAL-2", json!({}), None),
            json!({"op_id": "q-5", "op": "insert", "doctype": "Task", "data": {"title": "Server-named"}, "client_ts": now()}),
        ];
        let first = s.upsert_as(&s.token, batch.clone()).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        let answers = first.json()["message"].as_array().unwrap().clone();
        let statuses: Vec<&str> = answers.iter().map(|a| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["applied"; 5], "{answers:?}");
        assert_eq!(
            answers[1]["resolved_doc"]["data"],
            json!({"title": "Buy milk", "status": "Done"})
        );
        let server_name = answers[4]["resolved_doc"]["name"].as_str().unwrap().to_string();
        assert!(server_name.starts_with("TASK-"), "{server_name}");
        let before = state(&s, &server_name).await;
        assert_eq!(
            before.0.as_ref().unwrap().0,
            json!({"title": "Buy milk", "status": "Done"})
        );
        assert!(before.1.as_ref().unwrap().1, "TASK-LOCAL-2 is a tombstone");
        assert_eq!((before.3, before.4), (5, 5));

        // The response was lost: the client sends the same batch again.
        let second = s.upsert_as(&s.token, batch).await;
        assert_eq!(second.status, StatusCode::OK);
        assert_eq!(
            second.text, first.text,
            "a replay returns the stored answers byte for byte"
        );
        assert_eq!(state(&s, &server_name).await, before, "a replay applies nothing");
        s.server.stop().await;
    }
}

type State = (
    Option<(Value, bool, i64)>,
    Option<(Value, bool, i64)>,
    Option<(Value, bool, i64)>,
    i64,
    i64,
);

async fn state(s: &Site, server_name: &str) -> State {
    (
        s.stored("Task", "TASK-LOCAL-1").await,
        s.stored("Task", "TASK-LOCAL-2").await,
        s.stored("Task", server_name).await,
        s.count("sync_version").await,
        s.count("sync_change").await,
    )
}

/// Runs the stale-update scenario of one row of the defaults table and returns (answer, stored data).
async fn stale_update(
    s: &Site,
    doctype: &str,
    data: Value,
    server_change: Value,
    client_change: Value,
) -> (Value, Value) {
    let name = unique("DOC-");
    let base = s.diverge(doctype, &name, data, server_change).await;
    let answer = s
        .one(op(&unique("op-"), "update", doctype, &name, client_change, Some(&base)))
        .await;
    let (stored, _, _) = s.stored(doctype, &name).await.unwrap();
    (answer, stored)
}

async fn server_wins_row(db: &TestDatabase, doctype: &str) {
    let s = site(db).await;
    let (answer, stored) = stale_update(
        &s,
        doctype,
        json!({"label": "original", "kept": 1}),
        json!({"label": "server"}),
        json!({"label": "client"}),
    )
    .await;
    assert_eq!(answer["status"], "discarded", "{answer}");
    assert_eq!(answer["resolved_doc"]["data"], json!({"label": "server", "kept": 1}));
    assert_eq!(
        stored,
        json!({"label": "server", "kept": 1}),
        "{doctype}: the server's version stands"
    );
    s.server.stop().await;
}

dartwing_e2e::backend_tests! {
    async fn strategy_organization_is_server_wins(db) {
        server_wins_row(db, "Organization").await;
    }

    async fn strategy_person_is_server_wins(db) {
        server_wins_row(db, "Person").await;
    }

    async fn strategy_org_member_is_server_wins(db) {
        server_wins_row(db, "Org Member").await;
    }

    async fn strategy_file_is_server_wins(db) {
        server_wins_row(db, "File").await;
    }

    async fn strategy_default_is_server_wins_for_unlisted_doctypes(db) {
        server_wins_row(db, "Widget").await;
    }

    async fn strategy_task_is_field_level(db) {
        let s = site(db).await;
        let (answer, stored) = stale_update(
            &s,
            "Task",
            json!({"status": "Open", "notes": "n0", "priority": "Low", "title": "t0", "assigned_to": "a"}),
            json!({"status": "Closed", "notes": "n-server", "title": "t-server"}),
            // status: both sides → server list; notes: both → client list; priority: client only;
            // title: both, unlisted → server; assigned_to: unchanged.
            json!({"status": "Doing", "notes": "n-client", "priority": "High", "title": "t-client", "assigned_to": "a"}),
        )
        .await;
        let expected = json!({"status": "Closed", "notes": "n-client", "priority": "High", "title": "t-server", "assigned_to": "a"});
        assert_eq!(answer["status"], "merged", "{answer}");
        assert_eq!(answer["resolved_doc"]["data"], expected);
        assert_eq!(stored, expected);
        s.server.stop().await;
    }

    async fn strategy_equipment_is_field_level(db) {
        let s = site(db).await;
        let (answer, stored) = stale_update(
            &s,
            "Equipment",
            json!({"current_location": "Depot", "notes": "", "serial": "S1"}),
            json!({"current_location": "Site A", "notes": "server note"}),
            json!({"current_location": "Van", "notes": "client note", "serial": "S2"}),
        )
        .await;
        let expected = json!({"current_location": "Site A", "notes": "client note", "serial": "S2"});
        assert_eq!(answer["status"], "merged", "{answer}");
        assert_eq!(stored, expected);
        s.server.stop().await;
    }

    async fn strategy_notification_is_client_wins(db) {
        let s = site(db).await;
        let (answer, stored) = stale_update(
            &s,
            "Notification",
            json!({"read_state": "unread", "dismissed": false, "text": "hi"}),
            json!({"text": "hello"}),
            json!({"read_state": "read", "dismissed": true, "text": "hi!"}),
        )
        .await;
        let expected = json!({"read_state": "read", "dismissed": true, "text": "hi!"});
        assert_eq!(answer["status"], "applied", "{answer}");
        assert_eq!(answer["resolved_doc"]["data"], expected);
        assert_eq!(stored, expected);
        s.server.stop().await;
    }

    async fn strategy_comment_is_append_only(db) {
        let s = site(db).await;
        // Concurrent adds are a union: two offline clients each add a comment.
        let a = s
            .one(op("c-a", "insert", "Comment", "CMT-A", json!({"text": "first"}), None))
            .await;
        let b = s
            .one(op("c-b", "insert", "Comment", "CMT-B", json!({"text": "second"}), None))
            .await;
        assert_eq!(
            (a["status"].as_str(), b["status"].as_str()),
            (Some("applied"), Some("applied"))
        );
        let base = a["server_ts"].as_str().unwrap();
        let edit = s
            .one(op(
                "c-edit",
                "update",
                "Comment",
                "CMT-A",
                json!({"text": "edited"}),
                Some(base),
            ))
            .await;
        assert_eq!(edit["status"], "rejected", "{edit}");
        assert_eq!(edit["exc_type"], "ValidationError");
        assert_eq!(s.stored("Comment", "CMT-A").await.unwrap().0, json!({"text": "first"}));
        let delete = s.one(op("c-del", "delete", "Comment", "CMT-A", json!({}), None)).await;
        assert_eq!(delete["status"], "applied", "{delete}");
        assert!(delete["resolved_doc"]["deleted"].as_bool().unwrap());
        let (data, deleted, _) = s.stored("Comment", "CMT-A").await.unwrap();
        assert!(
            deleted && data == json!({"text": "first"}),
            "a delete writes a tombstone"
        );
        s.server.stop().await;
    }

    async fn strategy_calendar_event_is_manual_resolve_with_notes_auto_merged_and_force_resolution(db) {
        let s = site(db).await;
        let name = "EV-1";
        let base = s
            .diverge(
                "Calendar Event",
                name,
                json!({"title": "Standup", "starts": "09:00", "notes": ""}),
                json!({"starts": "10:00"}),
            )
            .await;
        let answer = s
            .one(op(
                "ev-client",
                "update",
                "Calendar Event",
                name,
                json!({"starts": "08:30", "notes": "bring coffee"}),
                Some(&base),
            ))
            .await;
        assert_eq!(answer["status"], "conflict", "{answer}");
        let conflict_id = answer["conflict_id"].as_str().unwrap().to_string();
        assert_eq!(answer["server_doc"]["data"]["starts"], "10:00");
        assert_eq!(answer["client_doc"]["data"]["starts"], "08:30");
        // `notes` merges even in manual mode; `starts` waits for a person.
        let expected = json!({"title": "Standup", "starts": "10:00", "notes": "bring coffee"});
        assert_eq!(answer["resolved_doc"]["data"], expected);
        assert_eq!(s.stored("Calendar Event", name).await.unwrap().0, expected);

        let listed = s.server.get(&format!("{CONFLICTS}?org={}", s.org), &s.token).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        let open = listed.json()["message"].as_array().unwrap().clone();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0]["conflict_id"], json!(conflict_id));
        assert_eq!(open[0]["name"], name);
        assert_eq!(open[0]["status"], "Open");

        let mut force = op(
            "ev-force",
            "update",
            "Calendar Event",
            name,
            json!({"starts": "08:30"}),
            Some(&base),
        );
        force["force"] = json!(true);
        let resolved = s.one(force).await;
        assert_eq!(resolved["status"], "applied", "{resolved}");
        assert_eq!(s.stored("Calendar Event", name).await.unwrap().0["starts"], "08:30");
        let open = s
            .server
            .get(&format!("{CONFLICTS}?org={}", s.org), &s.token)
            .await
            .json();
        assert_eq!(open["message"], json!([]));
        let done = s
            .server
            .get(&format!("{CONFLICTS}?org={}&status=Resolved", s.org), &s.token)
            .await
            .json();
        assert_eq!(done["message"][0]["conflict_id"], json!(conflict_id));
        assert_eq!(done["message"][0]["resolved_by"], OWNER);
        s.server.stop().await;
    }

    async fn last_write_wins_overwrites_newer_and_records_it_in_the_history(db) {
        let s = site_with(db, |c| {
            c.sync.strategies.push(DocTypeStrategy {
                doctype: "Note".into(),
                strategy: ConflictStrategy::LastWriteWins,
                server_fields: vec![],
                client_fields: vec![],
                auto_merge_fields: vec![],
            })
        })
        .await;
        let base = s
            .diverge("Note", "N-1", json!({"text": "a"}), json!({"text": "server"}))
            .await;
        let newer = s
            .one(op(
                "n-new",
                "update",
                "Note",
                "N-1",
                json!({"text": "client"}),
                Some(&base),
            ))
            .await;
        assert_eq!(newer["status"], "applied", "{newer}");
        let mut older = op("n-old", "update", "Note", "N-1", json!({"text": "stale"}), Some(&base));
        older["client_ts"] = json!("2020-01-01T00:00:00.000000Z");
        let older = s.one(older).await;
        assert_eq!(older["status"], "discarded", "{older}");
        assert_eq!(s.stored("Note", "N-1").await.unwrap().0, json!({"text": "client"}));
        let note: Option<String> = sqlx::query("SELECT note FROM sync_version WHERE name = 'N-1' AND version = 3")
            .fetch_one(s.server.app.db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert!(note.unwrap().contains("overwrote version 2"));
        s.server.stop().await;
    }

    async fn tombstone_wins_over_update_until_an_explicit_undelete(db) {
        let s = site(db).await;
        let inserted = s
            .one(op("t-1", "insert", "Task", "T-1", json!({"title": "x"}), None))
            .await;
        let base = inserted["server_ts"].as_str().unwrap().to_string();
        let deleted = s.one(op("t-2", "delete", "Task", "T-1", json!({}), Some(&base))).await;
        assert_eq!(deleted["status"], "applied");
        let update = s
            .one(op(
                "t-3",
                "update",
                "Task",
                "T-1",
                json!({"title": "offline edit"}),
                Some(&base),
            ))
            .await;
        assert_eq!(update["status"], "discarded", "{update}");
        assert_eq!(update["resolved_doc"]["deleted"], true);
        assert!(s.stored("Task", "T-1").await.unwrap().1);
        let undelete = s
            .one(op("t-4", "undelete", "Task", "T-1", json!({"title": "restored"}), None))
            .await;
        assert_eq!(undelete["status"], "applied", "{undelete}");
        let (data, is_deleted, _) = s.stored("Task", "T-1").await.unwrap();
        assert!(!is_deleted);
        assert_eq!(data, json!({"title": "restored"}));
        let ops: Vec<String> = s
            .feed_all(Some("Task"), 100)
            .await
            .iter()
            .map(|r| format!("{}", r["deleted"]))
            .collect();
        assert_eq!(ops, ["false", "true", "false"]);
        s.server.stop().await;
    }

    async fn deltas_are_published_to_sync_rooms_in_the_feed_row_shape(db) {
        let s = site(db).await;
        s.one(op("d-1", "insert", "Task", "T-D", json!({"title": "x"}), None))
            .await;
        s.one(op("d-2", "delete", "Task", "T-D", json!({}), None)).await;
        let rows = s.feed_all(None, 100).await;
        let deltas: Vec<(String, Value, Target)> = s
            .server
            .publisher
            .events()
            .into_iter()
            .filter(|(event, _, _)| event == "sync_delta")
            .collect();
        assert_eq!(deltas.len(), 2);
        for ((_, message, target), row) in deltas.iter().zip(&rows) {
            assert_eq!(target, &Target::Room(format!("sync:Task:{}", s.org)));
            assert_eq!(message, row, "a delta is the feed row");
        }
        let keys: HashSet<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            HashSet::from(["name", "doctype", "modified", "docstatus", "data", "deleted"])
        );
        s.server.stop().await;
    }

    async fn large_dataset_paginates_until_has_more_is_false_and_limit_is_capped(db) {
        let s = site(db).await;
        for batch in 0..20 {
            let items = (0..500)
                .map(|i| {
                    let n = batch * 500 + i;
                    op(
                        &format!("bulk-{n}"),
                        "insert",
                        "Task",
                        &format!("T-{n:05}"),
                        json!({"n": n}),
                        None,
                    )
                })
                .collect();
            let answers = s.upsert(items).await;
            assert!(answers.iter().all(|a| a["status"] == "applied"));
        }
        s.one(op("other", "insert", "Comment", "C-1", json!({}), None)).await;
        let first = s.feed("limit=100000").await.json();
        assert_eq!(
            first["message"]["rows"].as_array().unwrap().len(),
            500,
            "limit capped at 500"
        );
        let default = s.feed("").await.json();
        assert_eq!(
            default["message"]["rows"].as_array().unwrap().len(),
            100,
            "default limit"
        );
        let rows = s.feed_all(Some("Task"), 1000).await;
        assert_eq!(rows.len(), 10_000);
        let names: HashSet<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 10_000, "no duplicates");
        assert!(
            rows.windows(2).all(|w| w[0]["name"].as_str() < w[1]["name"].as_str()),
            "commit order"
        );
        assert_eq!(s.feed_all(None, 500).await.len(), 10_001);
        s.server.stop().await;
    }

    async fn watermark_never_skips_changes_committed_by_concurrent_writers(db) {
        let s = site(db).await;
        let sync = s.server.app.sync.clone();
        let org = s.org.clone();
        let writers = 4;
        let batches = 40;
        let per_batch = 5;
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let sync = sync.clone();
            let org = org.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let admin = Principal::system("writer");
                for b in 0..batches {
                    let items = (0..per_batch)
                        .map(|i| {
                            op(
                                &format!("w{w}-{b}-{i}"),
                                "insert",
                                "Task",
                                &format!("W{w}-{b}-{i}"),
                                json!({}),
                                None,
                            )
                        })
                        .collect();
                    sync.upsert_batch(&admin, &org, items, None).await.unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        // The reader pages while the writers commit, then drains.
        let reader = Principal::system("reader");
        let mut seen = Vec::new();
        let mut since: Option<String> = None;
        loop {
            let writers_done = done.load(std::sync::atomic::Ordering::SeqCst) == writers;
            let page = sync
                .feed(
                    &reader,
                    &dartwing_sync::FeedRequest {
                        org: org.clone(),
                        doctype: Some("Task".into()),
                        since: since.clone(),
                        limit: Some(7),
                    },
                )
                .await
                .unwrap();
            seen.extend(page.rows.iter().map(|r| {
                let row: serde_json::Value = serde_json::from_str(r.get()).unwrap();
                row["name"].as_str().unwrap().to_string()
            }));
            since = Some(page.next_since);
            if writers_done && !page.has_more {
                break;
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no duplicates");
        assert_eq!(seen.len(), writers * batches * per_batch, "no gaps");
        if db.backend == Backend::Postgres {
            eprintln!(
                "postgres: reader saw {} changes from {writers} concurrent writers",
                seen.len()
            );
        }
        s.server.stop().await;
    }

    async fn removed_member_loses_feed_and_upsert_access_at_once_and_guests_cannot_write(db) {
        let s = site(db).await;
        let member = s.server.add_member(&s.org, "member@example.com", "Member").await;
        let guest_email = "guest@example.com";
        s.server.add_member(&s.org, guest_email, "Guest").await;
        let member_token = s.server.token("member@example.com");
        let feed = format!("{FEED}?org={}", s.org);
        assert_eq!(s.server.get(&feed, &member_token).await.status, StatusCode::OK);
        let ok = s
            .upsert_as(&member_token, vec![op("m-1", "insert", "Task", "M-1", json!({}), None)])
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

        let guest = s.server.token(guest_email);
        assert_eq!(s.server.get(&feed, &guest).await.status, StatusCode::OK, "guests read");
        let denied = s
            .upsert_as(&guest, vec![op("g-1", "insert", "Task", "G-1", json!({}), None)])
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(denied.json()["exc_type"], "PermissionError");

        let admin = s.server.admin_token("root@example.com");
        let removed = s
            .server
            .delete(&format!("/api/resource/Org%20Member/{member}"), &admin)
            .await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        assert_eq!(s.server.get(&feed, &member_token).await.status, StatusCode::FORBIDDEN);
        let denied = s
            .upsert_as(&member_token, vec![op("m-2", "insert", "Task", "M-2", json!({}), None)])
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert!(s.stored("Task", "M-2").await.is_none());
        assert!(s.stored("Task", "G-1").await.is_none());
        s.server.stop().await;
    }

    async fn bad_input_is_refused_per_item_or_per_request_and_changes_nothing(db) {
        let s = site_with(db, |c| c.sync.max_document_bytes = 1024).await;
        let other_org = s.server.create_org("rival@example.com", "Rival").await;
        let rival = s.server.token("rival@example.com");
        let taken = s
            .server
            .post(
                UPSERT,
                &rival,
                &json!({"org": other_org, "items": [op("r-1", "insert", "Task", "SHARED-1", json!({"secret": 1}), None)]}),
            )
            .await;
        assert_eq!(taken.status, StatusCode::OK);
        let changes_before = s.count("sync_change").await;

        let items = vec![
            json!({"op_id": "b-1", "op": "upsert", "doctype": "Task", "name": "B-1", "data": {}, "client_ts": now()}),
            op("b-2", "insert", "Task", "B-2", json!([1, 2]), None),
            op(
                "b-3",
                "insert",
                "Task",
                "B-3",
                json!({"modified": "2020-01-01T00:00:00Z"}),
                None,
            ),
            // Another organization's name is no concern of this one: an update of it is an update
            // of a document this organization does not have (inserting it is covered in
            // platform_limits.rs: it becomes this organization's own document).
            op("b-5", "update", "Task", "SHARED-1", json!({"secret": 2}), None),
            op("b-6", "insert", "Task", "B-6", json!({"blob": "x".repeat(2000)}), None),
            json!("not an object"),
            op("b-8", "insert", "Bad:Type", "B-8", json!({}), None),
        ];
        let answers = s.upsert(items).await;
        let got: Vec<(&str, &str)> = answers
            .iter()
            .map(|a| (a["status"].as_str().unwrap(), a["exc_type"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                ("rejected", "BadRequestError"),
                ("rejected", "BadRequestError"),
                ("rejected", "ValidationError"),
                ("rejected", "DoesNotExistError"),
                ("rejected", "RequestEntityTooLarge"),
                ("rejected", "BadRequestError"),
                ("rejected", "BadRequestError"),
            ],
            "{answers:?}"
        );
        assert!(
            answers
                .iter()
                .all(|a| a["message"].as_str().is_some_and(|m| !m.is_empty()))
        );
        assert_eq!(s.count("sync_change").await, changes_before, "nothing applied");
        assert_eq!(s.stored("Task", "SHARED-1").await.unwrap().0, json!({"secret": 1}));

        // Per request: malformed watermarks, foreign watermarks, other organizations, bad shapes.
        let malformed = s.feed("since=nothex").await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.json()["exc_type"], "InvalidWatermarkError");
        let foreign = s.server.get(&format!("{FEED}?org={other_org}"), &rival).await.json()["message"]["next_since"]
            .as_str()
            .unwrap()
            .to_string();
        let reply = s.feed(&format!("since={foreign}")).await;
        assert_eq!(reply.json()["exc_type"], "InvalidWatermarkError");
        let reply = s.feed("limit=0").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = s.feed("limit=many").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = s.server.get(&format!("{FEED}?org={other_org}"), &s.token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        for body in [
            json!({"org": s.org, "items": {"op_id": "x"}}),
            json!({"org": s.org}),
            json!({"org": s.org, "items": [], "extra": true}),
        ] {
            let reply = s.server.post(UPSERT, &s.token, &body).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text);
        }
        let too_many: Vec<Value> = (0..501)
            .map(|i| op(&format!("m{i}"), "insert", "Task", &format!("M{i}"), json!({}), None))
            .collect();
        let reply = s.upsert_as(&s.token, too_many).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        let reply = s
            .server
            .post(
                UPSERT,
                &s.token,
                &json!({"org": other_org, "items": [op("x", "insert", "Task", "X", json!({}), None)]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(s.count("sync_change").await, changes_before, "nothing applied");
        s.server.stop().await;
    }

    async fn watermark_older_than_the_retained_change_log_requires_a_resync(db) {
        let s = site(db).await;
        let first = s.one(op("r-1", "insert", "Task", "T-R", json!({"v": 1}), None)).await;
        let base = first["server_ts"].as_str().unwrap().to_string();
        let page = s.feed("limit=1").await.json();
        let old_mark = page["message"]["next_since"].as_str().unwrap().to_string();
        let second = s
            .one(op("r-2", "update", "Task", "T-R", json!({"v": 2}), Some(&base)))
            .await;
        let base = second["server_ts"].as_str().unwrap().to_string();
        s.one(op("r-3", "update", "Task", "T-R", json!({"v": 3}), Some(&base)))
            .await;
        s.one(op("r-4", "insert", "Task", "T-S", json!({"v": 1}), None)).await;

        let removed = s.server.app.sync.compact_change_log(Timestamp::now()).await.unwrap();
        assert_eq!(removed, 2, "superseded changes of T-R are compacted");
        let reply = s.feed(&format!("since={old_mark}")).await;
        assert_eq!(reply.status, StatusCode::GONE, "{}", reply.text);
        assert_eq!(reply.json()["exc_type"], "ResyncRequired");
        // A full resync (no watermark) still returns every live document at its latest version.
        let rows = s.feed_all(None, 100).await;
        let latest: Vec<(String, Value)> = rows
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["data"]["v"].clone()))
            .collect();
        assert_eq!(latest, [("T-R".to_string(), json!(3)), ("T-S".to_string(), json!(1))]);
        s.server.stop().await;
    }
}

dartwing_e2e::backend_tests! {
    async fn one_batch_writes_a_document_several_times_replays_an_op_id_and_merges_stale_and_fresh_items(db) {
        let s = site(db).await;
        // A's history: a0 (the client's base), then a server-side status change.
        let base_a = s
            .diverge("Task", "MIX-A", json!({"title": "a0", "status": "Open"}), json!({"status": "Blocked"}))
            .await;
        let inserted = s
            .one(op("mix-b", "insert", "Task", "MIX-B", json!({"title": "b0", "status": "Open"}), None))
            .await;
        let base_b = inserted["server_ts"].as_str().unwrap().to_string();
        let batch = vec![
            // Fresh: B's stored version is its base.
            op("mix-1", "update", "Task", "MIX-B", json!({"status": "Started"}), Some(&base_b)),
            // Stale, based on a version in A's history: `title` changed on the client only.
            op("mix-2", "update", "Task", "MIX-A", json!({"title": "a1"}), Some(&base_a)),
            // A replay of mix-1 inside the batch: its answer again, nothing applied.
            op("mix-1", "update", "Task", "MIX-B", json!({"status": "Ignored"}), Some(&base_b)),
            // Stale, based on the stored version that mix-1 replaced in this very batch.
            op("mix-3", "update", "Task", "MIX-B", json!({"title": "b1"}), Some(&base_b)),
            // No base: builds on the version this batch wrote last.
            op("mix-4", "update", "Task", "MIX-B", json!({"title": "b2"}), None),
        ];
        let answers = s.upsert(batch.clone()).await;
        let statuses: Vec<&str> = answers.iter().map(|a| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["applied"; 5], "{answers:?}");
        assert_eq!(answers[2], answers[0], "a replayed op_id gets the first answer");
        // The batch again, after a fresh write and followed by an update that is stale against
        // that write and based on a version the first batch wrote (mix-1's).
        let latest_b = answers[4]["server_ts"].as_str().unwrap().to_string();
        let mix_1_version = answers[0]["server_ts"].as_str().unwrap().to_string();
        let mut second = batch.clone();
        second.insert(0, op("mix-0", "update", "Task", "MIX-B", json!({"title": "b3"}), Some(&latest_b)));
        second.push(op("mix-5", "update", "Task", "MIX-B", json!({"status": "Done"}), Some(&mix_1_version)));
        let replayed = s.upsert(second).await;
        assert_eq!(&replayed[1..6], &answers[..], "the first batch's answers, byte for byte");
        assert_eq!(replayed[0]["status"], "applied", "{replayed:?}");
        assert_eq!(replayed[6]["status"], "applied", "{replayed:?}");

        let (a, _, a_version) = s.stored("Task", "MIX-A").await.unwrap();
        assert_eq!(a, json!({"title": "a1", "status": "Blocked"}), "the base came from the history");
        assert_eq!(a_version, 3);
        let (b, _, b_version) = s.stored("Task", "MIX-B").await.unwrap();
        assert_eq!(
            b,
            json!({"title": "b3", "status": "Done"}),
            "mix-3 merged against the version mix-1 replaced, mix-5 against mix-1's"
        );
        assert_eq!(b_version, 6);
        assert_eq!(replayed[6]["resolved_doc"]["data"], b);

        // The feed holds every change once, in write order, each row as its answer gave it.
        let rows = s.feed_all(None, 3).await;
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["MIX-A", "MIX-A", "MIX-B", "MIX-B", "MIX-A", "MIX-B", "MIX-B", "MIX-B", "MIX-B"]
        );
        let written = [&answers[0], &answers[1], &answers[3], &answers[4], &replayed[0], &replayed[6]];
        for (row, answer) in rows[3..].iter().zip(written) {
            assert_eq!(row, &answer["resolved_doc"]);
        }
        assert_eq!(s.count("sync_version").await, 9);
        assert_eq!(s.count("sync_change").await, 9);
        s.server.stop().await;
    }

    async fn conflicts_raised_and_resolved_in_one_batch_are_stored_per_document(db) {
        let s = site(db).await;
        let mut bases = Vec::new();
        for name in ["EV-A", "EV-B"] {
            let base = s
                .diverge(
                    "Calendar Event",
                    name,
                    json!({"title": "Standup", "starts": "09:00"}),
                    json!({"starts": "10:00"}),
                )
                .await;
            bases.push(base);
        }
        let conflict = |op_id: &str, name: &str, base: &str| {
            op(op_id, "update", "Calendar Event", name, json!({"starts": "08:30"}), Some(base))
        };
        let mut force = op(
            "ev-force-a",
            "update",
            "Calendar Event",
            "EV-A",
            json!({"starts": "08:45"}),
            Some(&bases[0]),
        );
        force["force"] = json!(true);
        let mut force_again = force.clone();
        force_again["op_id"] = json!("ev-force-a2");
        force_again["data"] = json!({"starts": "08:50"});
        let answers = s
            .upsert(vec![
                conflict("ev-a", "EV-A", &bases[0]),
                conflict("ev-b", "EV-B", &bases[1]),
                force,
                force_again,
            ])
            .await;
        let statuses: Vec<&str> = answers.iter().map(|a| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["conflict", "conflict", "applied", "applied"], "{answers:?}");
        let site = &s;
        let list = |status: &str| {
            let url = format!("{CONFLICTS}?org={}&status={status}", site.org);
            async move { site.server.get(&url, &site.token).await.json()["message"].clone() }
        };
        let open = list("Open").await;
        assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
        assert_eq!(open[0]["name"], "EV-B");
        assert_eq!(open[0]["conflict_id"], answers[1]["conflict_id"]);
        let resolved = list("Resolved").await;
        assert_eq!(resolved.as_array().unwrap().len(), 1, "{resolved}");
        assert_eq!(resolved[0]["conflict_id"], answers[0]["conflict_id"]);
        assert_eq!(resolved[0]["resolved_by"], OWNER);
        let resolved_by_op = sqlx::query("SELECT resolved_op_id FROM sync_conflict WHERE status = 'Resolved'")
            .fetch_one(s.server.app.db.pool())
            .await
            .unwrap();
        assert_eq!(
            resolved_by_op.try_get::<String, _>(0).unwrap(),
            "ev-force-a",
            "the first forced write resolves"
        );
        assert_eq!(s.stored("Calendar Event", "EV-A").await.unwrap().0["starts"], "08:50");
        s.server.stop().await;
    }
}
