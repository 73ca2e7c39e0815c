//! How capabilities learn about tenancy without depending on the tenancy capability: the
//! [`OrganizationDirectory`] answers what an organization is (its status, its administrators), and
//! [`AccessChanges`] tells whoever listens that someone's access may have changed (membership
//! removed or deactivated, person deactivated or renamed, organization suspended or resumed), so
//! that state derived from earlier permission decisions — realtime room subscriptions, the job
//! engine's record of paused organizations — follows at once.

use crate::Principal;
use crate::tenancy::OrgStatus;
use std::sync::{Arc, RwLock};

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// The access of the users with these emails may have shrunk; re-check what they hold.
    Users(Vec<String>),
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
}

impl AccessChange {
    /// The users whose access may have changed.
    pub fn users(&self) -> &[String] {
        match self {
            AccessChange::Users(emails) => emails,
            AccessChange::OrganizationStatus { members, .. } => members,
            AccessChange::OrganizationDeleted { .. } => &[],
        }
    }
}

type Listener = Box<dyn Fn(&AccessChange) + Send + Sync>;

/// The node's access-change hub: stores publish, capabilities listen. Created with the node's
/// infrastructure, before the capabilities, so every capability can subscribe as it is built.
/// Listeners must not block: they hand the change to their own background work (typically a
/// channel), which also keeps the hub free of references to the listeners' owners.
#[derive(Clone, Default)]
pub struct AccessChanges {
    listeners: Arc<RwLock<Vec<Listener>>>,
}

impl AccessChanges {
    /// A hub without listeners.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `listener` with every later change.
    pub fn subscribe(&self, listener: impl Fn(&AccessChange) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.listeners.write() {
            listeners.push(Box::new(listener));
        }
    }

    /// Tells every listener about `change` (nothing for a change concerning nobody).
    pub fn publish(&self, change: AccessChange) {
        if matches!(&change, AccessChange::Users(emails) if emails.is_empty()) {
            return;
        }
        if let Ok(listeners) = self.listeners.read() {
            for listener in listeners.iter() {
                listener(&change);
            }
        }
    }
}

impl std::fmt::Debug for AccessChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.listeners.read().map(|l| l.len()).unwrap_or_default();
        f.debug_struct("AccessChanges").field("listeners", &count).finish()
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
