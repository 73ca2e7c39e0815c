//! Offline sync (SPEC §7): generic documents of any DocType owned by one organization, their
//! version history, an append-only change log read through a gap-free watermark, an idempotent
//! write queue with per-DocType conflict strategies, and deltas on `sync:{doctype}:{org}` rooms.
//!
//! Every request goes through the permission module (`Read` for the feed and conflicts, `Write`
//! for the write queue); every row of a request belongs to the organization checked.

mod apply;
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

use crate::apply::{Applied, ParsedItem};
use crate::metrics::SyncMetrics;
use crate::model::{ConflictInfo, FeedPage};
use crate::store::Store;
use crate::watermark::{FeedStart, Watermark};
use dartwing_core::access::{AccessChange, AccessChanges, SharedDirectory};
use dartwing_core::config::SyncConfig;
use dartwing_core::jobs::{CronEntry, JobType};
use dartwing_core::permission::OrgScope;
use dartwing_core::publish::{SharedPublisher, Target};
use dartwing_core::{Action, Error, Principal, Result, Timestamp};
use dartwing_db::Db;
use dartwing_http::Capability;
use dartwing_observe::Metrics;
use serde_json::Value;
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
    store: Store,
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
    /// Watermark from the previous page, or a time (see [`FeedStart`]); `None` = from the beginning.
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
                store: Store::new(db)?,
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
            .map(|s| FeedStart::parse(org, s))
            .transpose()?;
        let store = &self.inner.store;
        let after = match since {
            Some(FeedStart::After(mark)) => {
                let cursor = store.cursor(org).await?;
                if mark.seq < cursor.pruned_seq || mark.seq > cursor.seq {
                    return Err(SyncError::ResyncRequired.into());
                }
                mark.seq
            }
            Some(FeedStart::AfterTime(time)) => {
                let cursor = store.cursor(org).await?;
                let (first_after, oldest) = store.start_after_time(org, time).await?;
                // Compacted changes are older than every change kept: a time before the oldest
                // kept one may fall among them.
                if cursor.pruned_seq > 0 && oldest.is_none_or(|oldest| time < oldest) {
                    return Err(SyncError::ResyncRequired.into());
                }
                first_after.map_or(cursor.seq, |seq| seq - 1)
            }
            None => 0,
        };
        let mut rows = store
            .feed(org, request.doctype.as_deref(), after, i64::from(limit) + 1)
            .await?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let last = rows.last().map_or(after, |r| r.seq);
        let rows = rows
            .into_iter()
            .map(|r| r.into_row())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(FeedPage {
            rows,
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
        Ok(self.inner.store.list_conflicts(org, doctype, status, limit).await?)
    }

    /// Deletes what sync keeps for an organization once it is deleted (sync holds no foreign key
    /// into tenancy's tables), in the order the deletions are published.
    pub fn follow_organization_deletions(&self, access: &AccessChanges) {
        let (deleted, mut receive) = tokio::sync::mpsc::unbounded_channel::<String>();
        access.subscribe_here(move |change| {
            if let AccessChange::OrganizationDeleted { organization } = change {
                let _ = deleted.send(organization.clone());
            }
        });
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            while let Some(organization) = receive.recv().await {
                match store.delete_organization(&organization).await {
                    Ok(removed) => tracing::info!(organization, removed, "sync data of a deleted organization removed"),
                    Err(e) => {
                        tracing::error!(organization, error = %e, "cannot remove the sync data of a deleted organization")
                    }
                }
            }
        });
    }

    /// Compacts the change log (see [`ChangeLogRetention`]); returns the rows removed.
    pub async fn compact_change_log(&self, older_than: Timestamp) -> Result<u64> {
        let removed = self.inner.store.compact_change_log(older_than).await?;
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
        let parsed: Vec<ParsedItem> = items
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
        let Applied {
            answers,
            deltas,
            statuses,
        } = apply::apply_batch(&self.inner, actor, org, parsed).await?;
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
        Ok(Store::new(self.db.clone())?.holders(doctype, name, among).await?)
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
