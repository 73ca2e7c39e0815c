//! Applying a batch of queued writes (SPEC §7) in one transaction: the organization's change
//! counter is locked; the stored answers, the current documents and the base versions the batch
//! names are read (one statement each); each item is decided in order in memory; and then the
//! documents, version history, change log, conflicts and answers are written, one statement per
//! table whatever the batch size.

use crate::merge::{self, Decision, Outcome};
use crate::model::{Document, Item, ItemStatus, Operation, feed_row};
use crate::store::{ChangeRow, NewConflict, Versions};
use crate::{Delta, Inner, SyncError};
use dartwing_core::config::{ConflictStrategy, DocTypeStrategy};
use dartwing_core::ids::random_hex;
use dartwing_core::{Error, Principal, Result, Timestamp};
use serde_json::{Map, Value, json};
use sqlx::AnyConnection;
use std::collections::{HashMap, HashSet};

/// A queued write as parsed: its op_id (when usable) and the item, or why it was refused.
pub(crate) type ParsedItem = (Option<String>, std::result::Result<Item, SyncError>);

/// What a batch produced.
pub(crate) struct Applied {
    /// One answer per item, in item order.
    pub(crate) answers: Vec<Value>,
    /// Applied changes, to publish after commit.
    pub(crate) deltas: Vec<Delta>,
    /// DocType and status of each decided item (for `sync_upsert_items_total`).
    pub(crate) statuses: Vec<(String, &'static str)>,
}

/// Applies `parsed` for `actor` in `org` and commits.
pub(crate) async fn apply_batch(
    inner: &Inner,
    actor: &Principal,
    org: &str,
    parsed: Vec<ParsedItem>,
) -> Result<Applied> {
    let db = inner.store.db();
    let mut tx = db.begin_tx().await?;
    let mut batch = Batch::load(inner, &mut tx, actor, org, &parsed).await?;
    for (op_id, item) in parsed {
        batch.apply_item(op_id, item).await?;
    }
    batch.persist(&mut tx).await?;
    db.commit(tx).await?;
    Ok(Applied {
        answers: batch.answers.given,
        deltas: batch.writes.deltas,
        statuses: batch.answers.statuses,
    })
}

/// The answers of a batch so far.
struct Answers {
    /// Answers stored by earlier batches or given earlier in this one, by op_id.
    stored: HashMap<String, Value>,
    /// One per item so far.
    given: Vec<Value>,
    /// `(op_id, answer JSON)` to store.
    new: Vec<(String, String)>,
    statuses: Vec<(String, &'static str)>,
}

impl Answers {
    /// Gives `answer` to the item, remembering it under its op_id when it has a usable one.
    fn give(&mut self, op_id: Option<String>, doctype: String, status: ItemStatus, answer: Value) {
        self.statuses.push((doctype, status.as_str()));
        if let Some(op_id) = op_id {
            self.new.push((op_id.clone(), answer.to_string()));
            self.stored.insert(op_id, answer.clone());
        }
        self.given.push(answer);
    }
}

/// The writes of a batch so far.
struct Writes {
    /// The organization's latest change seq.
    seq: i64,
    changes: Vec<ChangeRow>,
    /// Documents this batch wrote, in first-write order.
    changed: Vec<(String, String)>,
    deltas: Vec<Delta>,
    conflicts: Vec<NewConflict>,
    /// `(doctype, name, op_id)` of forced writes that resolve a document's open conflicts.
    resolutions: Vec<(String, String, String)>,
}

/// A new version to write.
struct Write {
    data: Map<String, Value>,
    deleted: bool,
    note: Option<String>,
}

struct Batch<'a> {
    inner: &'a Inner,
    org: &'a str,
    actor_id: String,
    /// Current documents by `(doctype, name)`, including this batch's writes.
    docs: HashMap<(String, String), Document>,
    /// Earlier versions the items may merge against, by `(doctype, name, modified)`: those the
    /// history had when the batch began, and the stored versions this batch's writes replaced.
    versions: Versions,
    answers: Answers,
    writes: Writes,
}

impl<'a> Batch<'a> {
    /// Locks the organization's change counter and reads the stored answers, the current
    /// documents and the base versions the batch names (one statement each).
    async fn load(
        inner: &'a Inner,
        tx: &mut AnyConnection,
        actor: &Principal,
        org: &'a str,
        parsed: &[ParsedItem],
    ) -> Result<Self> {
        let store = &inner.store;
        let seq = store.lock_cursor(tx, org).await?;
        let op_ids: Vec<&str> = parsed.iter().filter_map(|(id, _)| id.as_deref()).collect();
        let stored = store.stored_answers(tx, org, &op_ids).await?;
        let items = || parsed.iter().filter_map(|(_, item)| item.as_ref().ok());
        let mut seen = HashSet::new();
        let keys: Vec<(&str, &str)> = items()
            .filter_map(|item| Some((item.doctype.as_str(), item.name.as_deref()?)))
            .filter(|key| seen.insert(*key))
            .collect();
        let docs: HashMap<(String, String), Document> = store
            .documents(tx, org, &keys)
            .await?
            .into_iter()
            .map(|doc| ((doc.doctype.clone(), doc.name.clone()), doc))
            .collect();
        // Stale updates of merging DocTypes name a base older than the current version; the
        // current version itself needs no lookup (a write of this batch that replaces it keeps
        // it in `versions`).
        let wanted: Vec<(&str, &str, Timestamp)> = items()
            .filter(|item| item.op == Operation::Update)
            .filter(|item| inner.config.strategy_for(&item.doctype).strategy == ConflictStrategy::FieldLevel)
            .filter_map(|item| {
                let (name, base) = (item.name.as_deref()?, item.base_modified?);
                let doc = docs.get(&(item.doctype.clone(), name.to_string()))?;
                (doc.modified != base).then_some((item.doctype.as_str(), name, base))
            })
            .collect();
        let versions = store.versions_at(tx, org, &wanted).await?;
        Ok(Self {
            inner,
            org,
            actor_id: actor.id().to_string(),
            docs,
            versions,
            answers: Answers {
                stored,
                given: Vec::with_capacity(parsed.len()),
                new: Vec::new(),
                statuses: Vec::new(),
            },
            writes: Writes {
                seq,
                changes: Vec::new(),
                changed: Vec::new(),
                deltas: Vec::new(),
                conflicts: Vec::new(),
                resolutions: Vec::new(),
            },
        })
    }

    /// Decides one item and records its answer and writes.
    async fn apply_item(&mut self, op_id: Option<String>, item: std::result::Result<Item, SyncError>) -> Result<()> {
        if let Some(answer) = op_id.as_ref().and_then(|id| self.answers.stored.get(id)) {
            let answer = answer.clone();
            self.answers.given.push(answer);
            return Ok(());
        }
        let now = Timestamp::now();
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                let answer = rejected(op_id.as_deref(), now, &error);
                tracing::info!(organization = self.org, error_type = "SyncItemRejected", message = %error, "sync item rejected");
                self.answers.give(op_id, String::new(), ItemStatus::Rejected, answer);
                return Ok(());
            }
        };
        let policy = self.inner.config.strategy_for(&item.doctype);
        let (item, name) = self.named(item);
        let key = (item.doctype.clone(), name.clone());
        let base = self.base_version(&item, &name, &policy)?;
        let current = self.docs.get(&key);
        let outcome = self.decide(&item, current, &policy, base.as_ref()).await;
        let mut answer_doc = current.map(Document::feed_row).unwrap_or(Value::Null);
        let mut extra = Map::new();
        let (status, write) = match outcome.decision {
            Decision::Reject(error) => {
                tracing::info!(organization = self.org, doctype = %item.doctype, docname = %name, error_type = "SyncItemRejected", message = %error, "sync item rejected");
                self.reject(&item, now, &error);
                return Ok(());
            }
            Decision::Keep(status) => (status, None),
            Decision::Write {
                data,
                deleted,
                status,
                note,
            } => (status, Some(Write { data, deleted, note })),
            Decision::Conflict {
                auto_merged,
                client_data,
            } => {
                let conflict = manual_conflict(&item, &name, current, client_data, answer_doc.clone());
                tracing::info!(organization = self.org, doctype = %item.doctype, docname = %name, conflict_id = %conflict.id, "sync conflict stored for manual resolution");
                extra.insert("conflict_id".into(), json!(conflict.id));
                extra.insert("server_doc".into(), conflict.server_doc.clone());
                extra.insert("client_doc".into(), conflict.client_doc.clone());
                self.writes.conflicts.push(conflict);
                let write = auto_merged.map(|data| Write {
                    data,
                    deleted: false,
                    note: Some("auto-merged fields of a manual conflict".to_string()),
                });
                (ItemStatus::Conflict, write)
            }
        };
        let mut server_ts = now;
        if let Some(write) = write {
            match self.record_write(&item, key, &policy, status, write, now) {
                Ok((row, modified)) => {
                    answer_doc = row;
                    server_ts = modified;
                }
                Err(error) => {
                    self.reject(&item, now, &error);
                    self.writes.conflicts.retain(|c| c.op_id != item.op_id);
                    return Ok(());
                }
            }
        }
        let answer = answer(item.client_op_id(), status, server_ts, answer_doc, extra);
        let op_id = item.replayable.then_some(item.op_id);
        self.answers.give(op_id, item.doctype, status, answer);
        Ok(())
    }

    /// The item with the name it writes: its own, or a new server name for an insert without
    /// one. An item without `base_modified` on a document this batch itself just wrote builds on
    /// that version (an offline create followed by edits in the same queue).
    fn named(&self, mut item: Item) -> (Item, String) {
        let name = match &item.name {
            Some(name) => name.clone(),
            None => {
                let mut generated = server_name(&item.doctype);
                while self.docs.contains_key(&(item.doctype.clone(), generated.clone())) {
                    generated = server_name(&item.doctype);
                }
                generated
            }
        };
        let key = (item.doctype.clone(), name.clone());
        if item.base_modified.is_none() && self.writes.changed.contains(&key) {
            item.base_modified = self.docs.get(&key).map(|d| d.modified);
        }
        (item, name)
    }

    /// The fields of the version the item was based on, when its strategy merges against it:
    /// from this batch's own changes, else from the versions read or replaced by the batch.
    fn base_version(&self, item: &Item, name: &str, policy: &DocTypeStrategy) -> Result<Option<Map<String, Value>>> {
        let current = self.docs.get(&(item.doctype.clone(), name.to_string()));
        let (Some(doc), Some(base_modified)) = (current, item.base_modified) else {
            return Ok(None);
        };
        if !merge::needs_base(item, Some(doc), policy) {
            return Ok(None);
        }
        let in_batch = self
            .writes
            .changes
            .iter()
            .rev()
            .find(|c| c.doctype == item.doctype && c.name == name && c.modified == base_modified);
        match in_batch {
            Some(change) => parse_object(&change.data).map(Some),
            None => Ok(self
                .versions
                .get(&(item.doctype.clone(), name.to_string(), base_modified))
                .cloned()),
        }
    }

    /// The strategy's decision (counted when it met a conflict); a conflict the merge hook
    /// merges becomes a write of the hook's fields.
    async fn decide(
        &self,
        item: &Item,
        current: Option<&Document>,
        policy: &DocTypeStrategy,
        base: Option<&Map<String, Value>>,
    ) -> Outcome {
        let metrics = &self.inner.metrics;
        let mut outcome = merge::decide(item, current, self.org, policy, base);
        if outcome.conflict {
            metrics
                .conflicts
                .with_label_values(&[metrics.doctype(&item.doctype), policy.strategy.as_str()])
                .inc();
        }
        if let (Decision::Conflict { client_data, .. }, Some(hook), Some(doc)) =
            (&outcome.decision, &self.inner.hook, current)
            && let Some(data) = hook.merge(self.org, doc, client_data, base).await
        {
            outcome.decision = Decision::Write {
                data,
                deleted: false,
                status: ItemStatus::Merged,
                note: Some("merged by the merge hook".into()),
            };
        }
        outcome
    }

    /// Records a new version of the item's document (the document, its change and its delta);
    /// returns its feed row and `modified`, or `TooLarge` when its fields exceed the size limit.
    fn record_write(
        &mut self,
        item: &Item,
        key: (String, String),
        policy: &DocTypeStrategy,
        status: ItemStatus,
        write: Write,
        now: Timestamp,
    ) -> std::result::Result<(Value, Timestamp), SyncError> {
        let Write { data, deleted, note } = write;
        let data_text = Value::Object(data.clone()).to_string();
        let max = self.inner.config.max_document_bytes;
        if data_text.len() > max {
            return Err(SyncError::TooLarge {
                size: data_text.len(),
                max,
            });
        }
        let current = self.docs.get(&key);
        let modified = match current {
            Some(doc) if doc.modified >= now => Timestamp::from_micros(doc.modified.as_micros() + 1),
            _ => now,
        };
        self.writes.seq += 1;
        let operation = match (item.op, current.is_some_and(|d| d.deleted), deleted) {
            (_, false, true) => Operation::Delete,
            (_, true, false) => Operation::Undelete,
            (Operation::Insert, ..) => Operation::Insert,
            _ => Operation::Update,
        };
        let doc = Document {
            doctype: item.doctype.clone(),
            name: key.1.clone(),
            organization: self.org.to_string(),
            data,
            docstatus: current.map_or(0, |d| d.docstatus),
            deleted,
            version: current.map_or(1, |d| d.version + 1),
            change_seq: self.writes.seq,
            creation: current.map_or(modified, |d| d.creation),
            modified,
            owner: current.map_or_else(|| self.actor_id.clone(), |d| d.owner.clone()),
            modified_by: self.actor_id.clone(),
        };
        let row = doc.feed_row();
        let feed_row = row.to_string();
        tracing::debug!(organization = self.org, doctype = %doc.doctype, docname = %doc.name, status = status.as_str(), "sync change applied");
        self.writes.changes.push(ChangeRow {
            seq: self.writes.seq,
            doctype: doc.doctype.clone(),
            name: doc.name.clone(),
            version: doc.version,
            operation: operation.as_str(),
            data: data_text,
            docstatus: doc.docstatus,
            deleted,
            modified,
            modified_by: self.actor_id.clone(),
            op_id: item.op_id.clone(),
            note,
            feed_row: Some(feed_row),
        });
        self.writes.deltas.push(Delta {
            doctype: doc.doctype.clone(),
            operation: operation.as_str(),
            row: row.clone(),
        });
        if !self.writes.changed.contains(&key) {
            self.writes.changed.push(key.clone());
            // The stored version this batch's first write replaces stays available as a base.
            if let Some(stored) = self.docs.get_mut(&key) {
                let replaced = (key.0.clone(), key.1.clone(), stored.modified);
                self.versions.insert(replaced, std::mem::take(&mut stored.data));
            }
        }
        if item.force && policy.strategy == ConflictStrategy::ManualResolve {
            self.writes
                .resolutions
                .push((item.doctype.clone(), doc.name.clone(), item.op_id.clone()));
        }
        self.docs.insert(key, doc);
        Ok((row, modified))
    }

    /// Answers the item `Rejected` for `error`.
    fn reject(&mut self, item: &Item, now: Timestamp, error: &SyncError) {
        let answer = rejected(item.client_op_id(), now, error);
        self.answers.give(
            item.replayable.then(|| item.op_id.clone()),
            item.doctype.clone(),
            ItemStatus::Rejected,
            answer,
        );
    }

    /// Writes the batch: final documents, version history, change log and cursor, conflicts and
    /// their resolutions, and the answers.
    async fn persist(&self, tx: &mut AnyConnection) -> Result<()> {
        let store = &self.inner.store;
        let (org, actor) = (self.org, self.actor_id.as_str());
        let writes = &self.writes;
        let now = Timestamp::now();
        if !writes.changes.is_empty() {
            let final_docs: Vec<(&Document, String)> = writes
                .changed
                .iter()
                .filter_map(|key| self.docs.get(key))
                .map(|doc| (doc, Value::Object(doc.data.clone()).to_string()))
                .collect();
            store.upsert_documents(tx, &final_docs).await?;
            store.append_changes(tx, org, &writes.changes).await?;
            store.advance_cursor(tx, org, writes.seq).await?;
        }
        store.insert_conflicts(tx, org, &writes.conflicts, actor, now).await?;
        let resolved = store
            .resolve_conflicts(tx, org, &writes.resolutions, actor, now)
            .await?;
        for ((doctype, name), resolved) in resolved {
            tracing::info!(organization = org, doctype = %doctype, docname = %name, resolved, "sync conflicts resolved");
        }
        store.insert_answers(tx, org, &self.answers.new, now).await?;
        Ok(())
    }
}

/// The conflict to store for manual resolution of the item, with the answer's extra fields.
fn manual_conflict(
    item: &Item,
    name: &str,
    current: Option<&Document>,
    client_data: Map<String, Value>,
    server_doc: Value,
) -> NewConflict {
    let client_doc = feed_row(
        name,
        &item.doctype,
        item.client_ts,
        current.map_or(0, |d| d.docstatus),
        Value::Object(client_data),
        false,
    );
    NewConflict {
        id: format!("SYNC-CONFLICT-{}", random_hex(8)),
        doctype: item.doctype.clone(),
        docname: name.to_string(),
        op_id: item.op_id.clone(),
        server_doc,
        client_doc,
    }
}

/// The fields of a change recorded earlier in this batch.
fn parse_object(text: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(text).map_err(|_| {
        tracing::error!(error_type = "CorruptDocument", "sync change data is not a JSON object");
        Error::internal()
    })
}

/// The answer to a decided item: its status, the server's time of it and the resolved document
/// (plus a manual conflict's details in `extra`).
fn answer(
    op_id: Option<&str>,
    status: ItemStatus,
    server_ts: Timestamp,
    resolved_doc: Value,
    extra: Map<String, Value>,
) -> Value {
    let mut answer = Map::new();
    answer.insert("op_id".into(), json!(op_id));
    answer.insert("status".into(), json!(status.as_str()));
    answer.insert("server_ts".into(), json!(server_ts));
    answer.insert("resolved_doc".into(), resolved_doc);
    answer.extend(extra);
    Value::Object(answer)
}

/// The answer to an item refused for `error`.
fn rejected(op_id: Option<&str>, now: Timestamp, error: &SyncError) -> Value {
    let error = Error::from(error.clone());
    json!({
        "op_id": op_id,
        "status": ItemStatus::Rejected.as_str(),
        "server_ts": now,
        "resolved_doc": null,
        "exc_type": error.exc_type(),
        "message": error.message(),
    })
}

/// A server-generated name such as `CALENDAR-EVENT-3f9a0c1d2e4b5a6c`.
fn server_name(doctype: &str) -> String {
    let prefix: String = doctype
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{}", random_hex(8))
}
