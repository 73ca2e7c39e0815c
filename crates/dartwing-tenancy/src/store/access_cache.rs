//! The node's caches of what access decisions are made from — principals (what the identity store
//! loaded for a user: Person, identity binding, memberships) and organizations' statuses — kept
//! between requests and dropped by every access change that concerns them, wherever in the cluster
//! it was published, and after a short time to live.
//!
//! A load that overlaps an invalidation is not kept: each load takes a [`Ticket`] before it reads,
//! and [`AccessCache::insert`] refuses it when any invalidation happened since, so a change
//! committed while the load read the old rows never leaves them cached.

use dartwing_core::access::{AccessChange, AccessChanges};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What a load saw of the invalidations: [`AccessCache::insert`] keeps its result only when
/// none happened since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

/// A bounded map from a key (a user's email, an organization's name) to what was loaded for it,
/// with the organizations it concerns and a time to live.
pub(super) struct AccessCache<V> {
    capacity: usize,
    ttl: Duration,
    /// Counts the invalidations.
    generation: AtomicU64,
    state: RwLock<State<V>>,
}

struct State<V> {
    entries: HashMap<String, Entry<V>>,
    /// Keys in the order they were inserted (a key may appear more than once; the entry's own
    /// time tells which is current).
    order: VecDeque<(String, Instant)>,
}

struct Entry<V> {
    value: Arc<V>,
    loaded: Instant,
    organizations: Vec<String>,
}

impl<V: Send + Sync + 'static> AccessCache<V> {
    /// A cache of at most `capacity` users, each kept `ttl` at most; `None` when either is zero.
    pub(super) fn new(capacity: usize, ttl: Duration) -> Option<Arc<Self>> {
        (capacity > 0 && !ttl.is_zero()).then(|| {
            Arc::new(Self {
                capacity,
                ttl,
                generation: AtomicU64::new(0),
                state: RwLock::new(State {
                    entries: HashMap::new(),
                    order: VecDeque::new(),
                }),
            })
        })
    }

    /// Drops cached users as `access` reports changes, wherever they were published.
    pub(super) fn follow(self: &Arc<Self>, access: &AccessChanges) {
        let cache = Arc::downgrade(self);
        access.subscribe(move |change| {
            if let Some(cache) = cache.upgrade() {
                cache.invalidate(change);
            }
        });
    }

    /// The value cached for `key`, unless it expired.
    pub(super) fn get(&self, key: &str) -> Option<Arc<V>> {
        let state = self.state.read().ok()?;
        let entry = state.entries.get(key)?;
        (entry.loaded.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    /// Taken before a load reads the database.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst))
    }

    /// Keeps `value`, loaded for `key` (concerning `organizations`: a user's memberships, an
    /// organization itself) after `ticket` was taken, unless an invalidation happened since.
    pub(super) fn insert(&self, ticket: Ticket, key: &str, value: V, organizations: Vec<String>) {
        let Ok(mut state) = self.state.write() else { return };
        // Invalidations bump the generation before they take the lock: checked under it, no
        // invalidation can slip between this check and the insert.
        if self.generation.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        let now = Instant::now();
        while state.entries.len() >= self.capacity {
            let Some((oldest, inserted)) = state.order.pop_front() else {
                break;
            };
            if state.entries.get(&oldest).is_some_and(|e| e.loaded == inserted) {
                state.entries.remove(&oldest);
            }
        }
        state.order.push_back((key.to_string(), now));
        if state.order.len() > self.capacity.saturating_mul(2) {
            let State { entries, order } = &mut *state;
            order.retain(|(key, inserted)| entries.get(key).is_some_and(|e| e.loaded == *inserted));
        }
        state.entries.insert(
            key.to_string(),
            Entry {
                value: Arc::new(value),
                loaded: now,
                organizations,
            },
        );
    }

    /// Drops what `change` may have made stale.
    pub(super) fn invalidate(&self, change: &AccessChange) {
        let (emails, organization): (&[String], Option<&str>) = match change {
            AccessChange::Users(emails) | AccessChange::Granted(emails) => (emails.as_slice(), None),
            AccessChange::OrganizationStatus {
                organization, members, ..
            } => (members.as_slice(), Some(organization.as_str())),
            AccessChange::OrganizationDeleted { organization } => (&[], Some(organization.as_str())),
            AccessChange::IntegrationTokens { .. } => return,
            AccessChange::Everything => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut state) = self.state.write() {
                    state.entries.clear();
                    state.order.clear();
                }
                return;
            }
        };
        self.generation.fetch_add(1, Ordering::SeqCst);
        let Ok(mut state) = self.state.write() else { return };
        for email in emails {
            state.entries.remove(email);
        }
        if let Some(organization) = organization {
            state
                .entries
                .retain(|_, entry| !entry.organizations.iter().any(|o| o == organization));
        }
    }

    /// How many users are cached (expired ones included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.state.read().map(|s| s.entries.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dartwing_core::tenancy::OrgStatus;

    fn cache(capacity: usize) -> Arc<AccessCache<&'static str>> {
        AccessCache::new(capacity, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn zero_capacity_or_time_to_live_turns_the_cache_off() {
        assert!(AccessCache::<()>::new(0, Duration::from_secs(1)).is_none());
        assert!(AccessCache::<()>::new(1, Duration::ZERO).is_none());
    }

    #[test]
    fn changes_drop_the_users_and_organizations_they_concern() {
        let cache = cache(10);
        let access = AccessChanges::new();
        cache.follow(&access);
        for (email, org) in [("a@x", "ORG-A"), ("b@x", "ORG-B"), ("c@x", "ORG-C"), ("d@x", "ORG-D")] {
            cache.insert(cache.ticket(), email, email, vec![org.to_string()]);
        }
        access.publish(AccessChange::Users(vec!["a@x".into()]));
        assert!(cache.get("a@x").is_none());
        assert!(cache.get("b@x").is_some());
        access.receive(&AccessChange::Granted(vec!["b@x".into()]));
        assert!(cache.get("b@x").is_none());
        access.publish(AccessChange::OrganizationStatus {
            organization: "ORG-C".into(),
            status: OrgStatus::Suspended,
            members: Vec::new(),
        });
        assert!(cache.get("c@x").is_none());
        access.publish(AccessChange::IntegrationTokens {
            organization: "ORG-D".into(),
            integration: "Google".into(),
        });
        assert_eq!(cache.get("d@x").as_deref(), Some(&"d@x"));
        access.receive(&AccessChange::Everything);
        assert!(cache.get("d@x").is_none());
    }

    #[test]
    fn a_load_overlapping_an_invalidation_is_not_kept() {
        let cache = cache(10);
        let ticket = cache.ticket();
        cache.invalidate(&AccessChange::Users(vec!["someone-else@x".into()]));
        cache.insert(ticket, "a@x", "stale", Vec::new());
        assert!(cache.get("a@x").is_none());
        cache.insert(cache.ticket(), "a@x", "fresh", Vec::new());
        assert_eq!(cache.get("a@x").as_deref(), Some(&"fresh"));
    }

    #[test]
    fn the_cache_stays_within_its_capacity_and_entries_expire() {
        let cache = cache(3);
        for email in ["a", "b", "c", "d", "a", "e"] {
            cache.insert(cache.ticket(), email, email, Vec::new());
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("e").is_some());
        let short = AccessCache::new(3, Duration::from_millis(1)).unwrap();
        short.insert(short.ticket(), "a", (), Vec::new());
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get("a").is_none());
    }
}
