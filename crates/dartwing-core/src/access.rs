//! How capabilities learn about tenancy without depending on the tenancy capability: the
//! [`OrganizationDirectory`] answers what an organization is (its status, its administrators), and
//! [`AccessChanges`] tells whoever listens that someone's access may have changed (membership
//! added, removed or deactivated, person deactivated or renamed, organization suspended or
//! resumed), so that state derived from earlier permission decisions — cached principals, realtime
//! room subscriptions, the job engine's record of paused organizations — follows at once. In a
//! cluster an [`AccessRelay`] carries every change to the other nodes, where the same listeners hear
//! it.

use crate::Principal;
use crate::tenancy::OrgStatus;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessChange {
    /// The access of the users with these emails may have shrunk; re-check what they hold.
    Users(Vec<String>),
    /// The access of the users with these emails may have grown (membership added, invitation
    /// offered or accepted, identity-provider account bound): whatever holds their principal
    /// reloads it; nothing they already hold needs re-checking.
    Granted(Vec<String>),
    /// An organization became Active or Suspended. Its members' access changed with it: they are
    /// listed so that observers of users need not look them up.
    OrganizationStatus {
        /// The organization.
        organization: String,
        /// Its new status.
        status: OrgStatus,
        /// Emails of its members.
        members: Vec<String>,
    },
    /// An organization was deleted (it had no members left): capabilities delete what they keep
    /// for it (their tables hold no foreign key into tenancy's).
    OrganizationDeleted {
        /// The organization.
        organization: String,
    },
    /// The stored tokens of an organization's integration changed (refreshed, replaced or
    /// disconnected): copies of the old ones must go.
    IntegrationTokens {
        /// The organization.
        organization: String,
        /// The integration (provider name).
        integration: String,
    },
    /// Changes may have been missed (the link to the other nodes was down): forget everything
    /// derived from earlier access decisions, and re-check what is held.
    Everything,
}

impl AccessChange {
    /// The users whose access may have shrunk.
    pub fn users(&self) -> &[String] {
        match self {
            AccessChange::Users(emails) => emails,
            AccessChange::OrganizationStatus { members, .. } => members,
            AccessChange::Granted(_)
            | AccessChange::OrganizationDeleted { .. }
            | AccessChange::IntegrationTokens { .. }
            | AccessChange::Everything => &[],
        }
    }

    /// Whether the change concerns nobody (an empty list of users).
    fn is_empty(&self) -> bool {
        matches!(self, AccessChange::Users(emails) | AccessChange::Granted(emails) if emails.is_empty())
    }
}

type Listener = Box<dyn Fn(&AccessChange) + Send + Sync>;

/// What a relay answers: a future that completes once the other nodes applied the change (or the
/// relay gave up waiting).
pub type Relayed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Carries the changes published on a node to the other nodes of its cluster.
pub trait AccessRelay: Send + Sync + 'static {
    /// Sends `change` on. Takes it at once (dropping the answer does not cancel the sending); the
    /// answer completes when the other nodes applied it or the relay gave up waiting.
    fn relay(&self, change: &AccessChange) -> Relayed;
}

/// The node's access-change hub: stores publish, capabilities listen. Created with the node's
/// infrastructure, before the capabilities, so every capability can subscribe as it is built.
/// Listeners must not block: they hand the change to their own background work (typically a
/// channel), which also keeps the hub free of references to the listeners' owners.
#[derive(Clone, Default)]
pub struct AccessChanges {
    inner: Arc<Hub>,
}

#[derive(Default)]
struct Hub {
    /// Hear every change, wherever in the cluster it was published.
    everywhere: RwLock<Vec<Listener>>,
    /// Hear the changes published on this node only.
    here: RwLock<Vec<Listener>>,
    relay: RwLock<Option<Arc<dyn AccessRelay>>>,
}

impl AccessChanges {
    /// A hub without listeners.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `listener` with every later change, whichever node of the cluster published it: for
    /// state this node keeps (caches, connections).
    pub fn subscribe(&self, listener: impl Fn(&AccessChange) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.inner.everywhere.write() {
            listeners.push(Box::new(listener));
        }
    }

    /// Calls `listener` with every later change published on this node: for work on the shared
    /// database, which the node where the change happened does once for the whole cluster.
    pub fn subscribe_here(&self, listener: impl Fn(&AccessChange) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.inner.here.write() {
            listeners.push(Box::new(listener));
        }
    }

    /// Sends every change published on this node from now on through `relay` to the other nodes.
    pub fn relay_through(&self, relay: Arc<dyn AccessRelay>) {
        if let Ok(mut slot) = self.inner.relay.write() {
            *slot = Some(relay);
        }
    }

    /// Tells every listener about `change` and relays it to the other nodes without waiting
    /// (nothing for a change concerning nobody).
    pub fn publish(&self, change: AccessChange) {
        drop(self.publish_and_relay(change));
    }

    /// [`AccessChanges::publish`], then waits until the other nodes applied the change, so that an
    /// answer given after it finds the change in force everywhere.
    pub async fn announce(&self, change: AccessChange) {
        if let Some(relayed) = self.publish_and_relay(change) {
            relayed.await;
        }
    }

    /// Tells the listeners of [`AccessChanges::subscribe`] about a change published on another node.
    pub fn receive(&self, change: &AccessChange) {
        if change.is_empty() {
            return;
        }
        Self::tell(&self.inner.everywhere, change);
    }

    fn publish_and_relay(&self, change: AccessChange) -> Option<Relayed> {
        if change.is_empty() {
            return None;
        }
        Self::tell(&self.inner.here, &change);
        Self::tell(&self.inner.everywhere, &change);
        let relay = self.inner.relay.read().ok()?.clone()?;
        Some(relay.relay(&change))
    }

    fn tell(listeners: &RwLock<Vec<Listener>>, change: &AccessChange) {
        if let Ok(listeners) = listeners.read() {
            for listener in listeners.iter() {
                listener(change);
            }
        }
    }
}

impl std::fmt::Debug for AccessChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |l: &RwLock<Vec<Listener>>| l.read().map(|l| l.len()).unwrap_or_default();
        f.debug_struct("AccessChanges")
            .field("listeners", &count(&self.inner.everywhere))
            .field("local_listeners", &count(&self.inner.here))
            .finish()
    }
}

/// What another capability may know of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationSummary {
    /// Primary key, e.g. `ORG-2026-00001`.
    pub name: String,
    /// Display name.
    pub org_name: String,
    /// Active or Suspended.
    pub status: OrgStatus,
}

/// What organizations are; implemented by the tenancy store, asked by the other capabilities (no
/// permission check: callers have authorized their principal already).
#[async_trait::async_trait]
pub trait OrganizationDirectory: Send + Sync + 'static {
    /// The organization, or `None` when it does not exist.
    async fn organization(&self, organization: &str) -> crate::Result<Option<OrganizationSummary>>;

    /// Emails of the Active Owners and Admins of `organization` who are themselves Active, sorted.
    async fn admin_emails(&self, organization: &str) -> crate::Result<Vec<String>>;

    /// Names of the Suspended organizations.
    async fn suspended(&self) -> crate::Result<Vec<String>>;

    /// Whether `organization` exists (in any status).
    async fn exists(&self, organization: &str) -> crate::Result<bool> {
        Ok(self.organization(organization).await?.is_some())
    }

    /// The status of `organization`, or `None` when it does not exist.
    async fn status(&self, organization: &str) -> crate::Result<Option<OrgStatus>> {
        Ok(self.organization(organization).await?.map(|o| o.status))
    }
}

/// A shared organization directory.
pub type SharedDirectory = Arc<dyn OrganizationDirectory>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_listener_hears_every_change_and_empty_changes_are_dropped() {
        let hub = AccessChanges::new();
        let heard = Arc::new(Mutex::new(Vec::new()));
        for id in 0..2 {
            let heard = heard.clone();
            hub.subscribe(move |change| {
                heard
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((id, change.clone()))
            });
        }
        hub.publish(AccessChange::Users(Vec::new()));
        let change = AccessChange::OrganizationStatus {
            organization: "ORG-A".into(),
            status: OrgStatus::Suspended,
            members: vec!["a@example.com".into()],
        };
        hub.publish(change.clone());
        let heard = heard.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(heard, vec![(0, change.clone()), (1, change.clone())]);
        assert_eq!(change.users(), ["a@example.com".to_string()]);
    }

    /// Records what it was asked to relay.
    #[derive(Default)]
    struct RecordingRelay(Mutex<Vec<AccessChange>>);

    impl AccessRelay for RecordingRelay {
        fn relay(&self, change: &AccessChange) -> Relayed {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(change.clone());
            Box::pin(async {})
        }
    }

    #[test]
    fn changes_from_other_nodes_reach_only_the_cluster_wide_listeners_and_are_not_relayed_again() {
        let hub = AccessChanges::new();
        let everywhere = Arc::new(Mutex::new(Vec::new()));
        let here = Arc::new(Mutex::new(Vec::new()));
        let sink = everywhere.clone();
        hub.subscribe(move |change| sink.lock().unwrap_or_else(|e| e.into_inner()).push(change.clone()));
        let sink = here.clone();
        hub.subscribe_here(move |change| sink.lock().unwrap_or_else(|e| e.into_inner()).push(change.clone()));
        let relay = Arc::new(RecordingRelay::default());
        hub.relay_through(relay.clone());

        let local = AccessChange::Granted(vec!["a@example.com".into()]);
        hub.publish(local.clone());
        let remote = AccessChange::OrganizationDeleted {
            organization: "ORG-B".into(),
        };
        hub.receive(&remote);
        hub.receive(&AccessChange::Users(Vec::new()));

        let read = |m: &Mutex<Vec<AccessChange>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(read(&everywhere), vec![local.clone(), remote]);
        assert_eq!(read(&here), vec![local.clone()]);
        assert_eq!(read(&relay.0), vec![local]);
    }

    #[test]
    fn changes_survive_the_wire() {
        for change in [
            AccessChange::Users(vec!["a@example.com".into()]),
            AccessChange::Granted(vec!["b@example.com".into()]),
            AccessChange::OrganizationStatus {
                organization: "ORG-A".into(),
                status: OrgStatus::Active,
                members: vec!["c@example.com".into()],
            },
            AccessChange::IntegrationTokens {
                organization: "ORG-A".into(),
                integration: "Google".into(),
            },
            AccessChange::Everything,
        ] {
            let wire = serde_json::to_string(&change).unwrap_or_default();
            let back: AccessChange = serde_json::from_str(&wire).unwrap_or(AccessChange::Users(Vec::new()));
            assert_eq!(back, change, "{wire}");
        }
    }
}

/// Whose a document is, for deciding who may follow it (`doc:{doctype}:{name}` rooms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentOwner {
    /// The document belongs to this organization: its members may follow it.
    Organization(String),
    /// The document is a person's own (a Person record): that user may follow it.
    User(String),
}

/// Finds who owns a document; each capability answers for its own DocTypes.
#[async_trait::async_trait]
pub trait DocumentDirectory: Send + Sync + 'static {
    /// The owner of `doctype`/`name`; `Ok(None)` when this directory does not know the document.
    async fn owner(&self, doctype: &str, name: &str) -> crate::Result<Option<DocumentOwner>>;

    /// The owner of `doctype`/`name` as `reader` sees it. Where names are unique per organization
    /// (sync documents), several organizations may hold the name: the answer is a copy `reader`
    /// may read, and `Ok(None)` — as for an unknown name — when there is none, so the answer
    /// never reveals another organization's documents. Default: [`DocumentDirectory::owner`].
    async fn owner_for(&self, reader: &Principal, doctype: &str, name: &str) -> crate::Result<Option<DocumentOwner>> {
        let _ = reader;
        self.owner(doctype, name).await
    }
}

/// A directory as one reader sees it: its `owner` answers [`DocumentDirectory::owner_for`] that
/// reader, for deciding that reader's access (e.g. a `doc:` room subscription).
pub struct ReaderView {
    directory: Arc<dyn DocumentDirectory>,
    reader: Principal,
}

impl ReaderView {
    /// `directory` as `reader` sees it.
    pub fn new(directory: Arc<dyn DocumentDirectory>, reader: Principal) -> Self {
        Self { directory, reader }
    }
}

#[async_trait::async_trait]
impl DocumentDirectory for ReaderView {
    async fn owner(&self, doctype: &str, name: &str) -> crate::Result<Option<DocumentOwner>> {
        self.directory.owner_for(&self.reader, doctype, name).await
    }
}

/// Asks several directories in order; the first that knows the document answers.
#[derive(Clone, Default)]
pub struct DocumentDirectories(Vec<Arc<dyn DocumentDirectory>>);

impl DocumentDirectories {
    /// Adds a directory.
    pub fn with(mut self, directory: Arc<dyn DocumentDirectory>) -> Self {
        self.0.push(directory);
        self
    }
}

#[async_trait::async_trait]
impl DocumentDirectory for DocumentDirectories {
    async fn owner(&self, doctype: &str, name: &str) -> crate::Result<Option<DocumentOwner>> {
        for directory in &self.0 {
            if let Some(owner) = directory.owner(doctype, name).await? {
                return Ok(Some(owner));
            }
        }
        Ok(None)
    }

    async fn owner_for(&self, reader: &Principal, doctype: &str, name: &str) -> crate::Result<Option<DocumentOwner>> {
        for directory in &self.0 {
            if let Some(owner) = directory.owner_for(reader, doctype, name).await? {
                return Ok(Some(owner));
            }
        }
        Ok(None)
    }
}
