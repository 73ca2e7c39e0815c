//! Conflict strategies (SPEC §7): what a queued item does to the server's document.
//!
//! Pure functions over the item, the server's current document and (for `field_level`) the
//! version the client based its change on; the store applies the resulting [`Decision`].

use crate::SyncError;
use crate::model::{Document, Item, ItemStatus, Operation};
use dartwing_core::config::{ConflictStrategy, DocTypeStrategy};
use serde_json::{Map, Value};

/// What to do with one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write a new version with these fields and tombstone flag.
    Write {
        /// The document's fields after the change.
        data: Map<String, Value>,
        /// Tombstone after the change.
        deleted: bool,
        /// `applied` or `merged`.
        status: ItemStatus,
        /// Recorded in the version history (e.g. a last-write-wins overwrite).
        note: Option<String>,
    },
    /// Write nothing; answer `status` with the server's document.
    Keep(ItemStatus),
    /// Store a manual conflict; write the auto-merged fields, if they changed anything.
    Conflict {
        /// The server document with `auto_merge_fields` taken from the client, when that differs.
        auto_merged: Option<Map<String, Value>>,
        /// The document as the client wants it.
        client_data: Map<String, Value>,
    },
    /// Refuse the item.
    Reject(SyncError),
}

/// A decision, and whether a conflict (a stale write whose values differ) was detected.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What to do.
    pub decision: Decision,
    /// A conflict was detected (counted in `sync_conflicts_total`).
    pub conflict: bool,
}

impl From<Decision> for Outcome {
    fn from(decision: Decision) -> Self {
        Outcome {
            decision,
            conflict: false,
        }
    }
}

/// Whether the item was made against an older version than the server's current one. An update
/// without `base_modified` is stale whenever the document exists: the server cannot know what the
/// client saw.
pub fn is_stale(item: &Item, doc: &Document) -> bool {
    item.base_modified.is_none_or(|base| base < doc.modified)
}

/// Whether deciding `item` needs the base version's fields (three-way `field_level` merges).
pub fn needs_base(item: &Item, doc: Option<&Document>, policy: &DocTypeStrategy) -> bool {
    item.op == Operation::Update
        && policy.strategy == ConflictStrategy::FieldLevel
        && doc.is_some_and(|d| !d.deleted && is_stale(item, d))
}

/// `base` with the fields of `patch` set.
pub fn patched(base: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut out = base.clone();
    for (k, v) in patch {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Decides `item` against `current`, the organization's document with the item's name. A document
/// of another organization counts as absent: names are per organization.
pub fn decide(
    item: &Item,
    current: Option<&Document>,
    organization: &str,
    policy: &DocTypeStrategy,
    base: Option<&Map<String, Value>>,
) -> Outcome {
    let name = item.name.clone().unwrap_or_default();
    let current = current.filter(|d| d.organization == organization);
    if item.op == Operation::Insert {
        return match current {
            Some(_) => Decision::Reject(SyncError::Exists {
                doctype: item.doctype.clone(),
                name,
            }),
            None => Decision::Write {
                data: item.data.clone(),
                deleted: false,
                status: ItemStatus::Applied,
                note: None,
            },
        }
        .into();
    }
    let Some(doc) = current else {
        return Decision::Reject(SyncError::NotFound {
            doctype: item.doctype.clone(),
            name,
        })
        .into();
    };
    match item.op {
        Operation::Insert => Decision::Keep(ItemStatus::Applied).into(),
        // Tombstones win: a delete applies whatever happened on the server since.
        Operation::Delete if doc.deleted => Decision::Keep(ItemStatus::Applied).into(),
        Operation::Delete => Decision::Write {
            data: doc.data.clone(),
            deleted: true,
            status: ItemStatus::Applied,
            note: None,
        }
        .into(),
        Operation::Undelete => {
            let data = patched(&doc.data, &item.data);
            if !doc.deleted && data == doc.data {
                Decision::Keep(ItemStatus::Applied).into()
            } else {
                Decision::Write {
                    data,
                    deleted: false,
                    status: ItemStatus::Applied,
                    note: doc.deleted.then(|| "undeleted".to_string()),
                }
                .into()
            }
        }
        Operation::Update => decide_update(item, doc, policy, base),
    }
}

fn decide_update(item: &Item, doc: &Document, policy: &DocTypeStrategy, base: Option<&Map<String, Value>>) -> Outcome {
    if policy.strategy == ConflictStrategy::AppendOnly {
        return Decision::Reject(SyncError::AppendOnly(item.doctype.clone())).into();
    }
    let data = patched(&doc.data, &item.data);
    if doc.deleted {
        // A tombstone wins over an update; only an explicit undelete lifts it.
        return Outcome {
            decision: Decision::Keep(ItemStatus::Discarded),
            conflict: data != doc.data,
        };
    }
    if data == doc.data {
        return Decision::Keep(ItemStatus::Applied).into();
    }
    let write = |data, status, note| Decision::Write {
        data,
        deleted: false,
        status,
        note,
    };
    if !is_stale(item, doc) {
        return write(data, ItemStatus::Applied, None).into();
    }
    let decision = match policy.strategy {
        ConflictStrategy::ServerWins | ConflictStrategy::AppendOnly => Decision::Keep(ItemStatus::Discarded),
        ConflictStrategy::ClientWins => write(data, ItemStatus::Applied, None),
        ConflictStrategy::LastWriteWins if item.client_ts >= doc.modified => write(
            data,
            ItemStatus::Applied,
            Some(format!(
                "last write wins: client change of {} overwrote version {} (modified {})",
                item.client_ts, doc.version, doc.modified
            )),
        ),
        ConflictStrategy::LastWriteWins => Decision::Keep(ItemStatus::Discarded),
        ConflictStrategy::FieldLevel => field_level(item, doc, policy, base),
        ConflictStrategy::ManualResolve if item.force => write(
            data,
            ItemStatus::Applied,
            Some("forced resolution of a manual conflict".into()),
        ),
        ConflictStrategy::ManualResolve => manual(item, doc, policy, data),
    };
    Outcome {
        decision,
        conflict: true,
    }
}

/// Three-way merge per field: a field changed on one side only since the base takes that side;
/// a field changed on both sides takes the client's value only if it is in `client_fields`
/// (`server_fields` and unlisted fields keep the server's). Without the base version every
/// differing field counts as changed on both sides.
fn field_level(item: &Item, doc: &Document, policy: &DocTypeStrategy, base: Option<&Map<String, Value>>) -> Decision {
    let mut data = doc.data.clone();
    let (mut taken, mut kept) = (0usize, 0usize);
    for (field, client) in &item.data {
        let server = doc.data.get(field);
        if server == Some(client) {
            continue;
        }
        let base_value = base.map(|b| b.get(field));
        let server_changed = base_value.is_none_or(|b| b != server);
        let client_changed = base_value.is_none_or(|b| b != Some(client));
        let take_client = if !server_changed {
            true
        } else if !client_changed {
            false
        } else {
            policy.client_fields.iter().any(|f| f == field)
        };
        if take_client {
            data.insert(field.clone(), client.clone());
            taken += 1;
        } else {
            kept += 1;
        }
    }
    match (taken, kept) {
        (0, _) => Decision::Keep(ItemStatus::Discarded),
        (_, 0) => Decision::Write {
            data,
            deleted: false,
            status: ItemStatus::Applied,
            note: None,
        },
        _ => Decision::Write {
            data,
            deleted: false,
            status: ItemStatus::Merged,
            note: Some("field-level merge".into()),
        },
    }
}

/// Manual resolution: `auto_merge_fields` are taken from the client at once; any other differing
/// field makes a stored conflict.
fn manual(item: &Item, doc: &Document, policy: &DocTypeStrategy, client_data: Map<String, Value>) -> Decision {
    let mut auto = doc.data.clone();
    let mut rest_differs = false;
    for (field, client) in &item.data {
        if doc.data.get(field) == Some(client) {
            continue;
        }
        if policy.auto_merge_fields.iter().any(|f| f == field) {
            auto.insert(field.clone(), client.clone());
        } else {
            rest_differs = true;
        }
    }
    if !rest_differs {
        return Decision::Write {
            data: auto,
            deleted: false,
            status: ItemStatus::Merged,
            note: Some("auto-merged fields".into()),
        };
    }
    Decision::Conflict {
        auto_merged: (auto != doc.data).then_some(auto),
        client_data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dartwing_core::Timestamp;
    use dartwing_core::config::SyncConfig;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn doc(data: Value) -> Document {
        Document {
            doctype: "Task".into(),
            name: "T-1".into(),
            organization: "ORG".into(),
            data: map(data),
            docstatus: 0,
            deleted: false,
            version: 2,
            change_seq: 2,
            creation: ts("2026-11-25T10:00:00Z"),
            modified: ts("2026-11-25T11:00:00Z"),
            owner: "a@example.com".into(),
            modified_by: "a@example.com".into(),
        }
    }

    fn update(data: Value, base: &str) -> Item {
        Item {
            op_id: "op".into(),
            replayable: true,
            doctype: "Task".into(),
            name: Some("T-1".into()),
            data: map(data),
            client_ts: ts("2026-11-25T10:30:00Z"),
            op: Operation::Update,
            base_modified: Some(ts(base)),
            force: false,
        }
    }

    #[test]
    fn field_level_takes_one_sided_changes_and_follows_the_lists_on_both_sided_ones() {
        let policy = SyncConfig::default().strategy_for("Task");
        let base = map(json!({"status": "Open", "notes": "a", "priority": "Low", "title": "x", "other": 1}));
        let server = doc(json!({"status": "Closed", "notes": "b", "priority": "Low", "title": "y", "other": 1}));
        // status: both changed → server list → server. notes: both → client list → client.
        // priority: client only → client. title: both, unlisted → server. other: unchanged.
        let item = update(
            json!({"status": "Doing", "notes": "c", "priority": "High", "title": "z", "other": 1}),
            "2026-11-25T10:00:00Z",
        );
        let out = decide(&item, Some(&server), "ORG", &policy, Some(&base));
        assert!(out.conflict);
        let Decision::Write { data, status, .. } = out.decision else {
            panic!("expected a write: {:?}", out.decision)
        };
        assert_eq!(status, ItemStatus::Merged);
        assert_eq!(
            Value::Object(data),
            json!({"status": "Closed", "notes": "c", "priority": "High", "title": "y", "other": 1})
        );
    }

    #[test]
    fn fresh_updates_apply_and_tombstones_win() {
        let policy = SyncConfig::default().strategy_for("Organization");
        let server = doc(json!({"a": 1}));
        let fresh = update(json!({"a": 2}), "2026-11-25T11:00:00Z");
        assert!(matches!(
            decide(&fresh, Some(&server), "ORG", &policy, None).decision,
            Decision::Write {
                status: ItemStatus::Applied,
                ..
            }
        ));
        let stale = update(json!({"a": 2}), "2026-11-25T10:00:00Z");
        assert_eq!(
            decide(&stale, Some(&server), "ORG", &policy, None).decision,
            Decision::Keep(ItemStatus::Discarded)
        );
        let mut tomb = server.clone();
        tomb.deleted = true;
        assert_eq!(
            decide(&fresh, Some(&tomb), "ORG", &policy, None).decision,
            Decision::Keep(ItemStatus::Discarded)
        );
        assert!(matches!(
            decide(&fresh, Some(&server), "OTHER", &policy, None).decision,
            Decision::Reject(SyncError::NotFound { .. })
        ));
        let mut insert = fresh.clone();
        insert.op = Operation::Insert;
        assert!(
            matches!(
                decide(&insert, Some(&server), "OTHER", &policy, None).decision,
                Decision::Write {
                    status: ItemStatus::Applied,
                    ..
                }
            ),
            "another organization's document with the name does not stand in the way"
        );
    }
}
