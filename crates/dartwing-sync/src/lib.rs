//! Offline sync (SPEC §7): generic documents of any DocType owned by one organization, their
//! version history, an append-only change log read through a gap-free watermark, an idempotent
//! write queue with per-DocType conflict strategies, and deltas on `sync:{doctype}:{org}` rooms.
//!
//! Every request goes through the permission module (`Read` for the feed and conflicts, `Write`
//! for the write queue); every row of a request belongs to the organization checked.

mod error;
mod hook;
pub mod merge;
mod metrics;
pub mod model;
mod retention;
pub mod routes;
mod store;
pub mod watermark;

/// The tables of this capability, for both backends.
pub static MIGRATIONS: dartwing_db::Migrations = dartwing_db::migrations!("sync");

pub use error::SyncError;
pub use retention::{ChangeLogRetention, RETENTION_JOB};

use crate::merge::Decision;
use crate::metrics::SyncMetrics;
use crate::model::{ConflictInfo, Document, FeedPage, Item, ItemStatus, Operation, feed_row};
use crate::store::{ChangeRow, NewConflict};
use crate::watermark::Watermark;
use dartwing_core::access::SharedDirectory;
use dartwing_core::config::{ConflictStrategy, SyncConfig};
use dartwing_core::ids::random_hex;
use dartwing_core::jobs::{CronEntry, JobType};
use dartwing_core::permission::OrgScope;
use dartwing_core::publish::{SharedPublisher, Target};
use dartwing_core::{Action, Error, Principal, Result, Timestamp};
use dartwing_db::{Db, map_db_error};
use dartwing_http::Capability;
use dartwing_observe::Metrics;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Event name of the deltas published to `sync:{doctype}:{org}` rooms.
pub const DELTA_EVENT: &str = "sync_delta";

/// The sync capability of a node.
#[derive(Clone)]
pub struct OfflineSync {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: SyncConfig,
    directory: SharedDirectory,
    publisher: SharedPublisher,
    metrics: SyncMetrics,
    hook: Option<hook::MergeHook>,
}

/// A feed request.
#[derive(Debug, Clone, Default)]
pub struct FeedRequest {
    /// Organization.
    pub org: String,
    /// Only this DocType (all when `None`).
    pub doctype: Option<String>,
    /// Watermark from the previous page (`None` = from the beginning).
    pub since: Option<String>,
    /// Page size (default and cap from configuration).
    pub limit: Option<u32>,
}

/// An applied change, published after commit.
struct Delta {
    doctype: String,
    operation: &'static str,
    row: Value,
}

impl OfflineSync {
    /// The sync capability on `db`, publishing deltas through `publisher`; `directory` tells
    /// which organizations exist.
    pub fn new(
        db: Db,
        config: SyncConfig,
        publisher: SharedPublisher,
        directory: SharedDirectory,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let hook = config
            .merge_hook_url
            .as_deref()
            .map(|url| hook::MergeHook::new(url, Duration::from_millis(config.merge_hook_timeout_ms)))
            .transpose()?;
        let metrics = SyncMetrics::new(metrics, &config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                directory,
                db,
                config,
                publisher,
                metrics,
                hook,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SyncConfig {
        &self.inner.config
    }

    async fn check_org(&self, actor: &Principal, org: &str, action: Action) -> Result<()> {
        if org.is_empty() {
            return Err(Error::bad_request("'org' is required"));
        }
        actor.authorize(action, org)?;
        if actor.system_admin && !self.inner.directory.exists(org).await? {
            return Err(Error::not_found(format!("Organization {org} not found")));
        }
        Ok(())
    }

    /// One page of the organization's change feed.
    pub async fn feed(&self, actor: &Principal, request: &FeedRequest) -> Result<FeedPage> {
        let org = request.org.as_str();
        let outcome = self.feed_inner(actor, request).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(e) if e.exc_type() == "ResyncRequired" => "resync",
            Err(e) if e.kind() == dartwing_core::ErrorKind::PermissionDenied => "denied",
            Err(_) => "error",
        };
        self.inner.metrics.feed_requests.with_label_values(&[label]).inc();
        if let Ok(page) = &outcome {
            let doctype = self.inner.metrics.doctype(request.doctype.as_deref().unwrap_or(""));
            self.inner
                .metrics
                .feed_rows
                .with_label_values(&[doctype])
                .inc_by(page.rows.len() as u64);
            tracing::debug!(
                organization = org,
                doctype = request.doctype.as_deref(),
                rows = page.rows.len(),
                "sync feed page"
            );
        }
        outcome
    }

    async fn feed_inner(&self, actor: &Principal, request: &FeedRequest) -> Result<FeedPage> {
        let org = request.org.as_str();
        self.check_org(actor, org, Action::Read).await?;
        if let Some(doctype) = &request.doctype {
            model::validate_doctype(doctype)?;
        }
        let config = &self.inner.config;
        let limit = match request.limit {
            Some(0) => return Err(Error::bad_request("'limit' must be at least 1")),
            Some(n) => n.min(config.feed_limit_max),
            None => config.feed_limit_default,
        };
        let since = request
            .since
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Watermark::decode(org, s))
            .transpose()?;
        let mut conn = self.inner.db.pool().acquire().await.map_err(map_db_error)?;
        let after = match since {
            Some(mark) => {
                let (seq, pruned) = store::cursor(&mut conn, org).await?;
                if mark.seq < pruned || mark.seq > seq {
                    return Err(SyncError::ResyncRequired.into());
                }
                mark.seq
            }
            None => 0,
        };
        let mut rows = observed(
            &self.inner.db,
            "Sync Change",
            "select",
            store::feed(&mut conn, org, request.doctype.as_deref(), after, i64::from(limit) + 1),
        )
        .await?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let last = rows.last().map_or(after, |r| r.seq);
        Ok(FeedPage {
            rows: rows.into_iter().map(|r| r.row).collect(),
            next_since: Watermark::encode(org, last),
            has_more,
        })
    }

    /// Manual conflicts of the organization (`status` `Open` by default).
    pub async fn conflicts(
        &self,
        actor: &Principal,
        org: &str,
        doctype: Option<&str>,
        status: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<ConflictInfo>> {
        self.check_org(actor, org, Action::Read).await?;
        let status = match status.unwrap_or("Open") {
            s @ ("Open" | "Resolved") => s,
            _ => return Err(Error::bad_request("'status' must be Open or Resolved")),
        };
        let limit = i64::from(limit.unwrap_or(100).clamp(1, 500));
        let mut conn = self.inner.db.pool().acquire().await.map_err(map_db_error)?;
        store::list_conflicts(&mut conn, org, doctype, status, limit).await
    }

    /// Compacts the change log (see [`ChangeLogRetention`]); returns the rows removed.
    pub async fn compact_change_log(&self, older_than: Timestamp) -> Result<u64> {
        let removed = self
            .inner
            .db
            .transaction(|conn| Box::pin(async move { store::compact_change_log(conn, older_than).await }))
            .await?;
        tracing::info!(removed, cutoff = %older_than, "sync change log compacted");
        Ok(removed)
    }

    /// Applies a batch of queued writes in order and answers each (SPEC §7). A repeated op_id
    /// applies nothing and returns the answer stored the first time.
    pub async fn upsert_batch(
        &self,
        actor: &Principal,
        org: &str,
        items: Vec<Value>,
        trace_id: Option<&str>,
    ) -> Result<Vec<Value>> {
        self.check_org(actor, org, Action::Write).await?;
        let max = self.inner.config.max_batch_items;
        if items.len() > max {
            return Err(SyncError::TooManyItems(max).into());
        }
        let received = Timestamp::now();
        let parsed: Vec<(Option<String>, std::result::Result<Item, SyncError>)> = items
            .into_iter()
            .map(|raw| (model::op_id_of(&raw), model::parse_item(raw)))
            .collect();
        let metrics = &self.inner.metrics;
        let org_label = metrics.org(org);
        metrics
            .queue_depth
            .with_label_values(&[&org_label])
            .set(parsed.len() as i64);
        if let Some(oldest) = parsed
            .iter()
            .filter_map(|(_, i)| i.as_ref().ok())
            .map(|i| i.client_ts)
            .min()
        {
            let lag = (received.as_micros() - oldest.as_micros()).max(0) / 1_000_000;
            metrics.lag.with_label_values(&[&org_label]).set(lag);
        }
        let (answers, deltas, statuses) = self.apply(actor, org, parsed).await?;
        for (doctype, status) in statuses {
            metrics
                .upsert_items
                .with_label_values(&[metrics.doctype(&doctype), status])
                .inc();
        }
        for delta in deltas {
            metrics
                .deltas
                .with_label_values(&[metrics.doctype(&delta.doctype), &org_label, delta.operation])
                .inc();
            self.inner.publisher.publish(
                DELTA_EVENT,
                delta.row,
                Target::Room(format!("sync:{}:{org}", delta.doctype)),
                trace_id,
            );
        }
        Ok(answers)
    }

    #[allow(clippy::type_complexity)]
    async fn apply(
        &self,
        actor: &Principal,
        org: &str,
        parsed: Vec<(Option<String>, std::result::Result<Item, SyncError>)>,
    ) -> Result<(Vec<Value>, Vec<Delta>, Vec<(String, &'static str)>)> {
        let inner = &self.inner;
        let actor_id = actor.id().to_string();
        let mut tx = inner.db.begin().await.map_err(map_db_error)?;
        let start_seq = observed(&inner.db, "Sync Cursor", "lock", store::lock_cursor(&mut tx, org)).await?;
        let op_ids: Vec<&str> = parsed.iter().filter_map(|(id, _)| id.as_deref()).collect();
        let mut stored = observed(
            &inner.db,
            "Sync Op",
            "select",
            store::stored_answers(&mut tx, org, &op_ids),
        )
        .await?;
        // Current documents of every named item, grouped by DocType.
        let mut wanted: HashMap<&str, Vec<&str>> = HashMap::new();
        for (_, item) in &parsed {
            if let Ok(Item {
                doctype,
                name: Some(name),
                ..
            }) = item
            {
                wanted.entry(doctype.as_str()).or_default().push(name.as_str());
            }
        }
        let mut docs: HashMap<(String, String), Document> = HashMap::new();
        for (doctype, names) in &wanted {
            for doc in store::documents(&mut tx, org, doctype, names).await? {
                docs.insert((doc.doctype.clone(), doc.name.clone()), doc);
            }
        }

        let mut seq = start_seq;
        let mut answers = Vec::with_capacity(parsed.len());
        let mut new_answers: Vec<(String, String)> = Vec::new();
        let mut changes: Vec<ChangeRow> = Vec::new();
        let mut changed: Vec<(String, String)> = Vec::new();
        let mut deltas = Vec::new();
        let mut statuses = Vec::new();
        let mut conflicts: Vec<NewConflict> = Vec::new();
        let mut resolutions: Vec<(String, String, String)> = Vec::new();

        for (op_id, item) in parsed {
            if let Some(text) = op_id.as_ref().and_then(|id| stored.get(id)) {
                answers.push(serde_json::from_str(text).unwrap_or(Value::Null));
                continue;
            }
            let now = Timestamp::now();
            let item = match item {
                Ok(item) => item,
                Err(error) => {
                    let answer = rejected(op_id.as_deref(), now, &error);
                    tracing::info!(organization = org, error_type = "SyncItemRejected", message = %error, "sync item rejected");
                    statuses.push((String::new(), ItemStatus::Rejected.as_str()));
                    if let Some(id) = op_id {
                        let text = answer.to_string();
                        stored.insert(id.clone(), text.clone());
                        new_answers.push((id, text));
                    }
                    answers.push(answer);
                    continue;
                }
            };
            let policy = inner.config.strategy_for(&item.doctype);
            let mut name = item.name.clone();
            if name.is_none() {
                let mut generated = server_name(&item.doctype);
                while docs.contains_key(&(item.doctype.clone(), generated.clone())) {
                    generated = server_name(&item.doctype);
                }
                name = Some(generated);
            }
            let name = name.unwrap_or_default();
            let key = (item.doctype.clone(), name.clone());
            let current = docs.get(&key);
            // An item without `base_modified` on a document this batch itself just wrote builds on
            // that version (an offline create followed by edits in the same queue).
            let mut item = item;
            if item.base_modified.is_none() && changed.contains(&key) {
                item.base_modified = current.map(|d| d.modified);
            }
            let base = match (current, item.base_modified) {
                (Some(doc), Some(base_modified)) if merge::needs_base(&item, Some(doc), &policy) => {
                    match changes
                        .iter()
                        .rev()
                        .find(|c| c.doctype == item.doctype && c.name == name && c.modified == base_modified)
                    {
                        Some(change) => Some(store::parse_object(&change.data)?),
                        None => store::version_at(&mut tx, org, &item.doctype, &name, base_modified).await?,
                    }
                }
                _ => None,
            };
            let mut outcome = merge::decide(&item, current, org, &policy, base.as_ref());
            if outcome.conflict {
                inner
                    .metrics
                    .conflicts
                    .with_label_values(&[inner.metrics.doctype(&item.doctype), policy.strategy.as_str()])
                    .inc();
            }
            if let (Decision::Conflict { client_data, .. }, Some(hook), Some(doc)) =
                (&outcome.decision, &inner.hook, current)
                && let Some(data) = hook.merge(org, doc, client_data, base.as_ref()).await
            {
                outcome.decision = Decision::Write {
                    data,
                    deleted: false,
                    status: ItemStatus::Merged,
                    note: Some("merged by the merge hook".into()),
                };
            }
            let mut answer_doc = current.map(Document::feed_row).unwrap_or(Value::Null);
            let mut server_ts = now;
            let mut extra = Map::new();
            let (status, write) = match outcome.decision {
                Decision::Reject(error) => {
                    let answer = rejected(Some(&item.op_id), now, &error);
                    tracing::info!(organization = org, doctype = %item.doctype, docname = %name, error_type = "SyncItemRejected", message = %error, "sync item rejected");
                    statuses.push((item.doctype.clone(), ItemStatus::Rejected.as_str()));
                    let text = answer.to_string();
                    stored.insert(item.op_id.clone(), text.clone());
                    new_answers.push((item.op_id.clone(), text));
                    answers.push(answer);
                    continue;
                }
                Decision::Keep(status) => (status, None),
                Decision::Write {
                    data,
                    deleted,
                    status,
                    note,
                } => (status, Some((data, deleted, note))),
                Decision::Conflict {
                    auto_merged,
                    client_data,
                } => {
                    let conflict_id = format!("SYNC-CONFLICT-{}", random_hex(8));
                    let server_doc = answer_doc.clone();
                    let client_doc = feed_row(
                        &name,
                        &item.doctype,
                        item.client_ts,
                        current.map_or(0, |d| d.docstatus),
                        Value::Object(client_data),
                        false,
                    );
                    extra.insert("conflict_id".into(), json!(conflict_id));
                    extra.insert("server_doc".into(), server_doc.clone());
                    extra.insert("client_doc".into(), client_doc.clone());
                    tracing::info!(organization = org, doctype = %item.doctype, docname = %name, conflict_id = %conflict_id, "sync conflict stored for manual resolution");
                    conflicts.push(NewConflict {
                        id: conflict_id,
                        doctype: item.doctype.clone(),
                        docname: name.clone(),
                        op_id: item.op_id.clone(),
                        server_doc,
                        client_doc,
                    });
                    (
                        ItemStatus::Conflict,
                        auto_merged
                            .map(|data| (data, false, Some("auto-merged fields of a manual conflict".to_string()))),
                    )
                }
            };
            if let Some((data, deleted, note)) = write {
                let data_text = Value::Object(data.clone()).to_string();
                if data_text.len() > inner.config.max_document_bytes {
                    let error = SyncError::TooLarge {
                        size: data_text.len(),
                        max: inner.config.max_document_bytes,
                    };
                    let answer = rejected(Some(&item.op_id), now, &error);
                    statuses.push((item.doctype.clone(), ItemStatus::Rejected.as_str()));
                    let text = answer.to_string();
                    stored.insert(item.op_id.clone(), text.clone());
                    new_answers.push((item.op_id.clone(), text));
                    answers.push(answer);
                    conflicts.retain(|c| c.op_id != item.op_id);
                    continue;
                }
                let modified = match current {
                    Some(doc) if doc.modified >= now => Timestamp::from_micros(doc.modified.as_micros() + 1),
                    _ => now,
                };
                seq += 1;
                let operation = match (item.op, current.is_some_and(|d| d.deleted), deleted) {
                    (_, false, true) => Operation::Delete,
                    (_, true, false) => Operation::Undelete,
                    (Operation::Insert, ..) => Operation::Insert,
                    _ => Operation::Update,
                };
                let doc = Document {
                    doctype: item.doctype.clone(),
                    name: name.clone(),
                    organization: org.to_string(),
                    data,
                    docstatus: current.map_or(0, |d| d.docstatus),
                    deleted,
                    version: current.map_or(1, |d| d.version + 1),
                    change_seq: seq,
                    creation: current.map_or(modified, |d| d.creation),
                    modified,
                    owner: current.map_or_else(|| actor_id.clone(), |d| d.owner.clone()),
                    modified_by: actor_id.clone(),
                };
                answer_doc = doc.feed_row();
                server_ts = modified;
                tracing::debug!(organization = org, doctype = %doc.doctype, docname = %doc.name, status = status.as_str(), "sync change applied");
                changes.push(ChangeRow {
                    seq,
                    doctype: doc.doctype.clone(),
                    name: doc.name.clone(),
                    version: doc.version,
                    operation: operation.as_str(),
                    data: data_text,
                    docstatus: doc.docstatus,
                    deleted,
                    modified,
                    modified_by: actor_id.clone(),
                    op_id: item.op_id.clone(),
                    note,
                });
                deltas.push(Delta {
                    doctype: doc.doctype.clone(),
                    operation: operation.as_str(),
                    row: answer_doc.clone(),
                });
                if !changed.contains(&key) {
                    changed.push(key.clone());
                }
                docs.insert(key, doc);
                if item.force && policy.strategy == ConflictStrategy::ManualResolve {
                    resolutions.push((item.doctype.clone(), name.clone(), item.op_id.clone()));
                }
            }
            let mut answer = Map::new();
            answer.insert("op_id".into(), json!(item.op_id));
            answer.insert("status".into(), json!(status.as_str()));
            answer.insert("server_ts".into(), json!(server_ts));
            answer.insert("resolved_doc".into(), answer_doc);
            answer.extend(extra);
            let answer = Value::Object(answer);
            statuses.push((item.doctype.clone(), status.as_str()));
            let text = answer.to_string();
            stored.insert(item.op_id.clone(), text.clone());
            new_answers.push((item.op_id, text));
            answers.push(answer);
        }

        let now = Timestamp::now();
        if !changes.is_empty() {
            let final_docs: Vec<(&Document, String)> = changed
                .iter()
                .filter_map(|key| docs.get(key))
                .map(|doc| (doc, Value::Object(doc.data.clone()).to_string()))
                .collect();
            observed(
                &inner.db,
                "Sync Document",
                "upsert",
                store::upsert_documents(&mut tx, &final_docs),
            )
            .await?;
            observed(
                &inner.db,
                "Sync Change",
                "insert",
                store::insert_changes(&mut tx, org, &changes),
            )
            .await?;
            store::advance_cursor(&mut tx, org, seq).await?;
        }
        for conflict in &conflicts {
            store::insert_conflict(&mut tx, org, conflict, &actor_id, now).await?;
        }
        for (doctype, name, op_id) in &resolutions {
            let resolved = store::resolve_conflicts(&mut tx, org, doctype, name, op_id, &actor_id, now).await?;
            if resolved > 0 {
                tracing::info!(organization = org, doctype = %doctype, docname = %name, resolved, "sync conflicts resolved");
            }
        }
        store::insert_answers(&mut tx, org, &new_answers, now).await?;
        tx.commit().await.map_err(map_db_error)?;
        Ok((answers, deltas, statuses))
    }
}

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

impl OfflineSync {
    /// Offline sync as a capability of the node: its routes, and the daily change-log retention
    /// job (system-only) with its schedule.
    pub fn capability(&self) -> Capability {
        Capability::new("sync")
            .routes(routes::routes(self.clone()))
            .job_type(JobType::system(RETENTION_JOB, ChangeLogRetention::new(self.clone())))
            .schedule(CronEntry::every(RETENTION_JOB, Duration::from_secs(86_400)))
    }
}

/// Runs a store call under `db_queries_total`/`db_query_duration_seconds`.
async fn observed<T, F>(db: &Db, doctype: &str, operation: &str, work: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let result: std::result::Result<Result<T>, sqlx::Error> =
        db.observe(doctype, operation, async { Ok(work.await) }).await;
    result.unwrap_or_else(|e| Err(map_db_error(e)))
}

/// Who owns sync documents, for `doc:{doctype}:{name}` realtime rooms: a document belongs to its
/// organization (tombstones included, so followers of a deleted document hear of its undelete).
///
/// Names are unique per organization, so several organizations may hold a document of the same
/// DocType and name. A reader is answered with the copy of an organization whose live events it
/// may receive (else one it may read, so the refusal concerns its own organization), and with
/// nothing — as for a name nobody uses — when it may read none: the answer never reveals that
/// another organization uses the name.
#[derive(Clone)]
pub struct SyncDocuments {
    db: Db,
}

impl SyncDocuments {
    /// The directory of the sync documents stored in `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Organizations holding `doctype`/`name`, among `among` (all when `None`), in name order.
    async fn holders(&self, doctype: &str, name: &str, among: Option<&[String]>) -> Result<Vec<String>> {
        let sql = match among {
            None => "SELECT organization FROM sync_document WHERE doctype = $1 AND name = $2 ORDER BY organization"
                .to_string(),
            Some(organizations) => format!(
                "SELECT organization FROM sync_document WHERE doctype = $1 AND name = $2 AND organization IN ({}) \
                 ORDER BY organization",
                (0..organizations.len())
                    .map(|i| format!("${}", i + 3))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let mut query = sqlx::query_as::<_, (String,)>(&sql).bind(doctype).bind(name);
        for organization in among.unwrap_or_default() {
            query = query.bind(organization);
        }
        let rows = query.fetch_all(self.db.pool()).await.map_err(map_db_error)?;
        Ok(rows.into_iter().map(|(organization,)| organization).collect())
    }
}

#[async_trait::async_trait]
impl dartwing_core::access::DocumentDirectory for SyncDocuments {
    /// Without a reader: the copy of the first organization (by name) holding the name.
    async fn owner(&self, doctype: &str, name: &str) -> Result<Option<dartwing_core::access::DocumentOwner>> {
        let holders = self.holders(doctype, name, None).await?;
        Ok(holders
            .into_iter()
            .next()
            .map(dartwing_core::access::DocumentOwner::Organization))
    }

    async fn owner_for(
        &self,
        reader: &Principal,
        doctype: &str,
        name: &str,
    ) -> Result<Option<dartwing_core::access::DocumentOwner>> {
        let holders = match reader.readable_organizations() {
            OrgScope::All => self.holders(doctype, name, None).await?,
            OrgScope::Only(organizations) if organizations.is_empty() => Vec::new(),
            // Memberships are few; a name shared by many organizations costs no more than them.
            OrgScope::Only(organizations) => self.holders(doctype, name, Some(&organizations)).await?,
        };
        let chosen = holders
            .iter()
            .find(|organization| reader.can(Action::Subscribe, organization))
            .or_else(|| {
                holders
                    .iter()
                    .find(|organization| reader.can(Action::Read, organization))
            });
        Ok(chosen.map(|organization| dartwing_core::access::DocumentOwner::Organization(organization.clone())))
    }
}
