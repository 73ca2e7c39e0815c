//! The statements against a real SQLite database (PostgreSQL runs them in the end-to-end suites).

use super::*;
use crate::model::Document;
use dartwing_core::config::DatabaseConfig;
use serde_json::{Map, Value, json};

/// A directory removed when the test ends.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store on a fresh SQLite file with the sync tables (in a directory kept while the returned
/// guard lives).
async fn sqlite_store(test: &str) -> (Store, ScratchDir) {
    let dir = ScratchDir(std::env::temp_dir().join(format!("dartwing-sync-store-{test}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let db = Db::connect(&Db::sqlite_url_in(&dir.0), &DatabaseConfig::default(), None)
        .await
        .expect("connects");
    db.migrate(&[&crate::MIGRATIONS]).await.expect("migrates");
    (Store::new(db).expect("statements"), dir)
}

fn document(name: &str, modified: Timestamp) -> Document {
    let mut data = Map::new();
    data.insert("title".into(), json!(format!("{name} title")));
    Document {
        doctype: "Task".into(),
        name: name.into(),
        organization: "org-a".into(),
        data,
        docstatus: 0,
        deleted: false,
        version: 1,
        change_seq: 1,
        creation: modified,
        modified,
        owner: "a@example.com".into(),
        modified_by: "a@example.com".into(),
    }
}

fn change(seq: i64, doc: &Document) -> ChangeRow {
    ChangeRow {
        feed_row: Some(doc.feed_row().to_string()),
        seq,
        doctype: doc.doctype.clone(),
        name: doc.name.clone(),
        version: doc.version,
        operation: "insert",
        data: Value::Object(doc.data.clone()).to_string(),
        docstatus: doc.docstatus,
        deleted: doc.deleted,
        modified: doc.modified,
        modified_by: doc.modified_by.clone(),
        op_id: format!("op-{seq}"),
        note: None,
    }
}

#[tokio::test]
async fn a_batch_of_documents_changes_and_answers_round_trips() {
    let (store, _dir) = sqlite_store("round-trip").await;
    let modified = Timestamp::from_micros(1_795_000_000_000_001);
    let docs = [document("T-1", modified), document("T-2", modified)];
    let mut tx = store.db().begin_tx().await.expect("begins");
    let with_data: Vec<(&Document, String)> = docs
        .iter()
        .map(|d| (d, Value::Object(d.data.clone()).to_string()))
        .collect();
    store.upsert_documents(&mut tx, &with_data).await.expect("upserts");
    let changes = [change(1, &docs[0]), change(2, &docs[1])];
    store.append_changes(&mut tx, "org-a", &changes).await.expect("appends");
    let answers = [("op-1".to_string(), r#"{"status":"applied"}"#.to_string())];
    store
        .insert_answers(&mut tx, "org-a", &answers, modified)
        .await
        .expect("stores answers");
    let keys = [("Task", "T-1"), ("Task", "T-2"), ("Task", "T-3"), ("Note", "T-1")];
    let mut read = store.documents(&mut tx, "org-a", &keys).await.expect("reads");
    read.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(read, docs);
    let older = Timestamp::from_micros(modified.as_micros() - 1);
    let versions = store
        .versions_at(
            &mut tx,
            "org-a",
            &[
                ("Task", "T-2", modified),
                ("Task", "T-1", older),
                ("Task", "T-3", modified),
            ],
        )
        .await
        .expect("reads the history");
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions.get(&("Task".to_string(), "T-2".to_string(), modified)),
        Some(&docs[1].data)
    );
    let stored = store
        .stored_answers(&mut tx, "org-a", &["op-1", "op-2"])
        .await
        .expect("reads answers");
    assert_eq!(stored.get("op-1"), Some(&json!({"status": "applied"})));
    assert_eq!(stored.len(), 1);
    store.db().commit(tx).await.expect("commits");

    let feed = store.feed("org-a", Some("Task"), 1, 10).await.expect("feed");
    assert_eq!(feed.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    let row = feed.into_iter().next().expect("a row").into_row().expect("JSON");
    assert_eq!(row.get(), docs[1].feed_row().to_string());
    let among = ["org-a".to_string(), "org-b".to_string()];
    assert_eq!(
        store.holders("Task", "T-1", Some(&among)).await.expect("holders"),
        ["org-a"]
    );
    assert!(
        store
            .holders("Task", "T-1", Some(&among[1..]))
            .await
            .expect("holders")
            .is_empty()
    );
}

#[tokio::test]
async fn the_feed_serves_stored_feed_rows_and_builds_those_of_rows_written_without_one() {
    let (store, _dir) = sqlite_store("feed-rows").await;
    let modified = Timestamp::from_micros(1_795_000_000_000_001);
    let docs = [document("T-1", modified), document("T-2", modified)];
    let legacy = ChangeRow {
        feed_row: None,
        ..change(1, &docs[0])
    };
    let mut tx = store.db().begin_tx().await.expect("begins");
    store
        .append_changes(&mut tx, "org-a", &[legacy, change(2, &docs[1])])
        .await
        .expect("appends");
    store.db().commit(tx).await.expect("commits");

    for doctype in [None, Some("Task")] {
        let rows: Vec<String> = store
            .feed("org-a", doctype, 0, 10)
            .await
            .expect("feed")
            .into_iter()
            .map(|entry| entry.into_row().expect("row").get().to_string())
            .collect();
        let expected: Vec<String> = docs.iter().map(|d| d.feed_row().to_string()).collect();
        assert_eq!(rows, expected);
    }
}

#[tokio::test]
async fn stored_data_that_is_not_a_json_object_fails_the_read_naming_the_statement() {
    let (store, _dir) = sqlite_store("corrupt").await;
    let doc = document("T-1", Timestamp::from_micros(1_795_000_000_000_001));
    let mut tx = store.db().begin_tx().await.expect("begins");
    store
        .upsert_documents(&mut tx, &[(&doc, "[1, 2]".to_string())])
        .await
        .expect("upserts");
    let read = store.documents(&mut tx, "org-a", &[("Task", "T-1")]).await;
    assert!(
        matches!(&read, Err(DbError::Query { statement, .. }) if statement == "Sync Document.current"),
        "{read:?}"
    );
}

#[tokio::test]
async fn a_deleted_organizations_sync_rows_are_deleted_and_other_organizations_keep_theirs() {
    let (store, _dir) = sqlite_store("organization-deleted").await;
    let modified = Timestamp::from_micros(1_795_000_000_000_001);
    let mut tx = store.db().begin_tx().await.expect("begins");
    for organization in ["org-a", "org-b"] {
        let mut doc = document("T-1", modified);
        doc.organization = organization.into();
        let data = Value::Object(doc.data.clone()).to_string();
        store.lock_cursor(&mut tx, organization).await.expect("locks");
        store.upsert_documents(&mut tx, &[(&doc, data)]).await.expect("upserts");
        store
            .append_changes(&mut tx, organization, &[change(1, &doc)])
            .await
            .expect("appends");
        store.advance_cursor(&mut tx, organization, 1).await.expect("advances");
        let answers = [("op-1".to_string(), "{}".to_string())];
        store
            .insert_answers(&mut tx, organization, &answers, modified)
            .await
            .expect("answers");
    }
    store.db().commit(tx).await.expect("commits");

    assert_eq!(store.delete_organization("org-a").await.expect("deletes"), 5);
    assert_eq!(store.cursor("org-a").await.expect("cursor").seq, 0);
    assert!(store.feed("org-a", None, 0, 10).await.expect("feed").is_empty());
    assert_eq!(store.holders("Task", "T-1", None).await.expect("holders"), ["org-b"]);
    assert_eq!(store.cursor("org-b").await.expect("cursor").seq, 1);
    assert_eq!(store.feed("org-b", None, 0, 10).await.expect("feed").len(), 1);
}

/// A directory of no organizations (the listener under test never asks it).
struct NoOrganizations;

#[async_trait::async_trait]
impl dartwing_core::access::OrganizationDirectory for NoOrganizations {
    async fn organization(
        &self,
        _organization: &str,
    ) -> dartwing_core::Result<Option<dartwing_core::access::OrganizationSummary>> {
        Ok(None)
    }

    async fn admin_emails(&self, _organization: &str) -> dartwing_core::Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn suspended(&self) -> dartwing_core::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_published_organization_deletion_removes_its_sync_data() {
    use dartwing_core::access::{AccessChange, AccessChanges};
    use std::sync::Arc;

    let (store, _dir) = sqlite_store("follow-deletions").await;
    let doc = document("T-1", Timestamp::from_micros(1_795_000_000_000_001));
    let mut tx = store.db().begin_tx().await.expect("begins");
    let data = Value::Object(doc.data.clone()).to_string();
    store.upsert_documents(&mut tx, &[(&doc, data)]).await.expect("upserts");
    store.db().commit(tx).await.expect("commits");
    let metrics = dartwing_observe::Metrics::new(false, 10).expect("metrics");
    let sync = crate::OfflineSync::new(
        store.db().clone(),
        dartwing_core::config::SyncConfig::default(),
        Arc::new(dartwing_core::publish::NoopPublisher),
        Arc::new(NoOrganizations),
        Arc::new(metrics),
    )
    .expect("sync");
    let access = AccessChanges::new();
    sync.follow_organization_deletions(&access);

    access.publish(AccessChange::OrganizationDeleted {
        organization: "org-a".into(),
    });
    for _ in 0..100 {
        if store.holders("Task", "T-1", None).await.expect("holders").is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the deleted organization's document is still stored");
}
