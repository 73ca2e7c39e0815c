//! The node's cache of decrypted access tokens: a valid token read by `access_token` is kept in
//! memory (never written anywhere) until shortly before its refresh point, and dropped as soon as
//! its integration's tokens change on any node of the cluster (refresh, new connection,
//! disconnect, failed refresh) or its organization is deleted.
//!
//! A read that overlaps a change is not kept: each read takes a ticket before it reads the row,
//! and [`TokenCache::insert`] refuses it when any change was heard since.

use super::refresh::TokenKey;
use super::tokens::AccessToken;
use dartwing_core::access::{AccessChange, AccessChanges};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// How long before its refresh point a cached token stops being used (then `access_token` reads
/// the row again and refreshes when it must).
pub(super) const MARGIN_BEFORE_REFRESH_US: i64 = 1_000_000;

/// A token and the time (µs since the epoch) until which it may be answered from memory.
struct Cached {
    token: AccessToken,
    use_until_us: i64,
}

/// Decrypted access tokens by (organization, integration).
#[derive(Default)]
pub(super) struct TokenCache {
    /// Counts the changes heard.
    generation: AtomicU64,
    tokens: RwLock<HashMap<TokenKey, Cached>>,
}

/// What a read saw of the changes: [`TokenCache::insert`] keeps its token only when none came since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

impl TokenCache {
    /// Drops tokens as `access` reports changes, wherever they were published.
    pub(super) fn follow(self: &Arc<Self>, access: &AccessChanges) {
        let cache = Arc::downgrade(self);
        access.subscribe(move |change| {
            if let Some(cache) = cache.upgrade() {
                cache.invalidate(change);
            }
        });
    }

    /// The token cached for (`organization`, `integration`), while `now_us` is before its end.
    pub(super) fn get(&self, organization: &str, integration: &str, now_us: i64) -> Option<AccessToken> {
        let tokens = self.tokens.read().ok()?;
        let cached = tokens.get(&(organization.to_string(), integration.to_string()))?;
        (now_us < cached.use_until_us).then(|| cached.token.clone())
    }

    /// Taken before the row is read.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Keeps `token`, read after `ticket` was taken, until `use_until_us`, unless a change was
    /// heard since.
    pub(super) fn insert(
        &self,
        ticket: Ticket,
        organization: &str,
        integration: &str,
        token: AccessToken,
        use_until_us: i64,
    ) {
        let Ok(mut tokens) = self.tokens.write() else { return };
        // Changes bump the generation before they take the lock: checked under it, none can slip
        // between this check and the insert.
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        tokens.insert(
            (organization.to_string(), integration.to_string()),
            Cached { token, use_until_us },
        );
    }

    /// Drops what `change` made stale.
    pub(super) fn invalidate(&self, change: &AccessChange) {
        let keep: Box<dyn Fn(&TokenKey) -> bool + '_> = match change {
            AccessChange::IntegrationTokens {
                organization,
                integration,
            } => Box::new(move |(o, i)| o != organization || i != integration),
            AccessChange::OrganizationDeleted { organization } => Box::new(move |(o, _)| o != organization),
            AccessChange::Everything => Box::new(|_| false),
            AccessChange::Users(_) | AccessChange::Granted(_) | AccessChange::OrganizationStatus { .. } => return,
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.retain(|key, _| keep(key));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn token(text: &str) -> AccessToken {
        AccessToken {
            access_token: text.into(),
            expires_at: None,
        }
    }

    #[test]
    fn tokens_are_used_until_their_end_and_dropped_by_the_changes_that_concern_them() {
        let cache = Arc::new(TokenCache::default());
        let access = AccessChanges::new();
        cache.follow(&access);
        for (org, integration) in [("o1", "google"), ("o1", "slack"), ("o2", "google")] {
            cache.insert(cache.ticket(), org, integration, token(org), 100);
        }
        assert!(cache.get("o1", "google", 99).is_some());
        assert!(cache.get("o1", "google", 100).is_none());
        access.receive(&AccessChange::IntegrationTokens {
            organization: "o1".into(),
            integration: "google".into(),
        });
        assert!(cache.get("o1", "google", 0).is_none());
        assert!(cache.get("o1", "slack", 0).is_some());
        access.publish(AccessChange::Users(vec!["a@x".into()]));
        assert!(cache.get("o1", "slack", 0).is_some());
        access.publish(AccessChange::OrganizationDeleted {
            organization: "o1".into(),
        });
        assert!(cache.get("o1", "slack", 0).is_none());
        assert!(cache.get("o2", "google", 0).is_some());
        access.receive(&AccessChange::Everything);
        assert!(cache.get("o2", "google", 0).is_none());
    }

    #[test]
    fn a_read_overlapping_a_change_is_not_kept() {
        let cache = TokenCache::default();
        let ticket = cache.ticket();
        cache.invalidate(&AccessChange::IntegrationTokens {
            organization: "o1".into(),
            integration: "google".into(),
        });
        cache.insert(ticket, "o1", "google", token("old"), 100);
        assert!(cache.get("o1", "google", 0).is_none());
    }
}
