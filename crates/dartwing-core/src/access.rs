//! How capabilities learn that someone's access may have shrunk (membership removed or
//! deactivated, person deactivated, organization suspended), so that state derived from earlier
//! permission decisions — such as realtime room subscriptions — is re-checked at once.

use crate::Principal;
use std::sync::{Arc, OnceLock, Weak};

/// Receives access changes; implemented by the realtime gateway.
pub trait AccessObserver: Send + Sync + 'static {
    /// The access of the users with these emails may have changed; re-check what they hold.
    /// Must not block: observers do their work in the background.
    fn access_changed(&self, emails: Vec<String>);
}

/// A slot for the node's observer, filled once the observer exists (it is built after the stores
/// that notify it). Clones share the slot. It holds the observer weakly: the observer itself holds
/// the stores, and its owner (the node) keeps it alive.
#[derive(Clone, Default)]
pub struct AccessNotifier {
    observer: Arc<OnceLock<Weak<dyn AccessObserver>>>,
}

impl AccessNotifier {
    /// Sets the observer; later calls are ignored. The caller keeps `observer` alive.
    pub fn set(&self, observer: &Arc<dyn AccessObserver>) {
        let _ = self.observer.set(Arc::downgrade(observer));
    }

    /// Tells the observer, if any, that these users' access may have changed.
    pub fn notify(&self, emails: Vec<String>) {
        if emails.is_empty() {
            return;
        }
        if let Some(observer) = self.observer.get().and_then(Weak::upgrade) {
            observer.access_changed(emails);
        }
    }
}

impl std::fmt::Debug for AccessNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessNotifier")
            .field(
                "observer_set",
                &self.observer.get().is_some_and(|o| o.strong_count() > 0),
            )
            .finish()
    }
}

/// Whether organizations exist; implemented by the tenancy store. Used where a name that no
/// membership vouches for must be checked, e.g. before it becomes a metric label.
#[async_trait::async_trait]
pub trait OrganizationDirectory: Send + Sync + 'static {
    /// Whether `organization` exists (in any status).
    async fn exists(&self, organization: &str) -> crate::Result<bool>;
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
