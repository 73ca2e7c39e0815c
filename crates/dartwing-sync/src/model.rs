//! Wire shapes of the sync API (SPEC §7) and the validation of queued items.

use crate::SyncError;
use dartwing_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Fields the server manages; a client's `data` may not set them.
pub const RESERVED_FIELDS: &[&str] = &[
    "name",
    "doctype",
    "organization",
    "modified",
    "modified_by",
    "docstatus",
    "deleted",
    "creation",
    "owner",
];

/// Longest op_id, DocType or document name.
pub const MAX_NAME_CHARS: usize = 140;

/// What a queued item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Create a document (client-generated name accepted).
    Insert,
    /// Change fields of a document (`data` is a patch: listed fields are set).
    Update,
    /// Write a tombstone.
    Delete,
    /// Lift a tombstone (and apply `data`).
    Undelete,
}

impl Operation {
    /// The name used in metrics, the change log and the version history.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Undelete => "undelete",
        }
    }
}

/// One queued write as the client sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    #[serde(default)]
    op_id: Option<String>,
    doctype: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    client_ts: Timestamp,
    op: Operation,
    #[serde(default)]
    base_modified: Option<Timestamp>,
    #[serde(default)]
    force: bool,
}

/// A validated queued write.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Client's unique id of the write, or one the server gave a write that came without.
    pub op_id: String,
    /// Whether the client named the write (`op_id`): only then is its answer kept, so that a
    /// replay of it gets the same answer instead of being applied again.
    pub replayable: bool,
    /// DocType.
    pub doctype: String,
    /// Document name (absent on inserts that want a server name).
    pub name: Option<String>,
    /// Fields to set.
    pub data: Map<String, Value>,
    /// When the client made the change.
    pub client_ts: Timestamp,
    /// Operation.
    pub op: Operation,
    /// `modified` of the version the client changed.
    pub base_modified: Option<Timestamp>,
    /// Resolve a pending manual conflict with this item.
    pub force: bool,
}

impl Item {
    /// The op_id the client gave the write, if any.
    pub fn client_op_id(&self) -> Option<&str> {
        self.replayable.then_some(self.op_id.as_str())
    }
}

/// The op_id of a raw item, if it has a usable one (so even a rejected item can be remembered).
pub fn op_id_of(raw: &Value) -> Option<String> {
    raw.get("op_id")
        .and_then(Value::as_str)
        .filter(|id| valid_name(id))
        .map(str::to_string)
}

/// Parses and validates one raw item.
pub fn parse_item(raw: Value) -> Result<Item, SyncError> {
    if !raw.is_object() {
        return Err(SyncError::BadItem("each item must be a JSON object".into()));
    }
    let item: RawItem = serde_json::from_value(raw).map_err(|e| SyncError::BadItem(e.to_string()))?;
    if item.op_id.as_deref().is_some_and(|id| !valid_name(id)) {
        return Err(SyncError::BadItem(format!(
            "'op_id' must be 1-{MAX_NAME_CHARS} printable characters"
        )));
    }
    validate_doctype(&item.doctype)?;
    if let Some(name) = &item.name
        && !valid_name(name)
    {
        return Err(SyncError::BadItem(format!(
            "'name' must be 1-{MAX_NAME_CHARS} printable characters"
        )));
    }
    if item.name.is_none() && item.op != Operation::Insert {
        return Err(SyncError::BadItem(format!(
            "'{}' needs the document 'name'",
            item.op.as_str()
        )));
    }
    let data = match item.data {
        Some(Value::Object(map)) => map,
        None if matches!(item.op, Operation::Delete | Operation::Undelete) => Map::new(),
        None => return Err(SyncError::BadItem("'data' is required".into())),
        Some(_) => return Err(SyncError::BadItem("'data' must be a JSON object".into())),
    };
    if let Some(field) = data.keys().find(|k| RESERVED_FIELDS.contains(&k.as_str())) {
        return Err(SyncError::ReservedField(field.clone()));
    }
    Ok(Item {
        replayable: item.op_id.is_some(),
        op_id: item
            .op_id
            .unwrap_or_else(|| format!("server-{}", dartwing_core::ids::random_hex(8))),
        doctype: item.doctype,
        name: item.name,
        data,
        client_ts: item.client_ts,
        op: item.op,
        base_modified: item.base_modified,
        force: item.force,
    })
}

/// A DocType name: 1-140 letters, digits, spaces, `_` or `-`, not starting with `_` (reserved
/// for `_default`), so that it fits the room grammar `sync:{doctype}:{org}`.
pub fn validate_doctype(doctype: &str) -> Result<(), SyncError> {
    let ok = !doctype.is_empty()
        && doctype.chars().count() <= MAX_NAME_CHARS
        && !doctype.starts_with('_')
        && !doctype.starts_with(' ')
        && doctype
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SyncError::BadItem(format!(
            "'doctype' must be 1-{MAX_NAME_CHARS} letters, digits, spaces, '_' or '-'"
        )))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME_CHARS && !name.chars().any(char::is_control)
}

/// A stored document (the current version).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// DocType.
    pub doctype: String,
    /// Name.
    pub name: String,
    /// Owning organization.
    pub organization: String,
    /// Fields.
    pub data: Map<String, Value>,
    /// Frappe docstatus (0 draft); server-managed.
    pub docstatus: i64,
    /// Tombstone.
    pub deleted: bool,
    /// Version number, from 1.
    pub version: i64,
    /// The change-log seq of the latest change.
    pub change_seq: i64,
    /// Created at.
    pub creation: Timestamp,
    /// Last change.
    pub modified: Timestamp,
    /// Who created it.
    pub owner: String,
    /// Who changed it last.
    pub modified_by: String,
}

impl Document {
    /// The feed-row shape `{name, doctype, modified, docstatus, data, deleted}`.
    pub fn feed_row(&self) -> Value {
        feed_row(
            &self.name,
            &self.doctype,
            self.modified,
            self.docstatus,
            Value::Object(self.data.clone()),
            self.deleted,
        )
    }
}

/// The feed-row shape.
pub fn feed_row(name: &str, doctype: &str, modified: Timestamp, docstatus: i64, data: Value, deleted: bool) -> Value {
    json!({
        "name": name,
        "doctype": doctype,
        "modified": modified,
        "docstatus": docstatus,
        "data": data,
        "deleted": deleted,
    })
}

/// How an item ended (SPEC §7 statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Applied as sent.
    Applied,
    /// Fields combined; `resolved_doc` is the result.
    Merged,
    /// The server's version stands.
    Discarded,
    /// Manual resolution pending.
    Conflict,
    /// Refused; nothing applied.
    Rejected,
}

impl ItemStatus {
    /// The status as sent and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Applied => "applied",
            ItemStatus::Merged => "merged",
            ItemStatus::Discarded => "discarded",
            ItemStatus::Conflict => "conflict",
            ItemStatus::Rejected => "rejected",
        }
    }
}

/// A feed page.
#[derive(Debug, Clone, Serialize)]
pub struct FeedPage {
    /// Changes in commit order, each the feed row (see [`feed_row`]) as serialized when the
    /// change was written.
    pub rows: Vec<Box<serde_json::value::RawValue>>,
    /// The watermark to send as `since` next.
    pub next_since: String,
    /// Whether more changes follow right away.
    pub has_more: bool,
}

/// A stored manual conflict.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictInfo {
    /// Conflict id.
    pub conflict_id: String,
    /// DocType.
    pub doctype: String,
    /// Document name.
    pub name: String,
    /// The queued write that conflicted.
    pub op_id: String,
    /// `Open` or `Resolved`.
    pub status: String,
    /// The server's document when the conflict arose.
    pub server_doc: Value,
    /// The document as the client wanted it.
    pub client_doc: Value,
    /// When it arose.
    pub created_at: String,
    /// Who sent the conflicting write.
    pub created_by: String,
    /// When it was resolved.
    pub resolved_at: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: Value) -> Result<Item, SyncError> {
        parse_item(v)
    }

    #[test]
    fn items_are_validated() {
        let ok = json!({"op_id": "a", "doctype": "Task", "name": "T-1", "data": {"x": 1},
            "client_ts": "2026-11-25T10:00:00.123456Z", "op": "update"});
        assert!(item(ok).is_ok());
        let bad = [
            json!({"op_id": "a", "doctype": "Task", "data": {}, "client_ts": "2026-11-25T10:00:00Z", "op": "upsert"}),
            json!({"op_id": "a", "doctype": "Task", "data": [1], "client_ts": "2026-11-25T10:00:00Z", "op": "insert"}),
            json!({"op_id": "a", "doctype": "Task", "data": {"modified": "x"}, "client_ts": "2026-11-25T10:00:00Z", "op": "insert"}),
            json!({"op_id": "a", "doctype": "_default", "data": {}, "client_ts": "2026-11-25T10:00:00Z", "op": "insert"}),
            json!({"op_id": "a", "doctype": "Task", "data": {}, "client_ts": "2026-11-25T10:00:00Z", "op": "update"}),
            json!({"op_id": "", "doctype": "Task", "data": {}, "client_ts": "2026-11-25T10:00:00Z", "op": "insert"}),
            json!({"op_id": "a", "doctype": "Task", "data": {}, "client_ts": "yesterday", "op": "insert"}),
            json!({"op_id": "a", "doctype": "Task", "data": {}, "client_ts": "2026-11-25T10:00:00Z", "op": "insert", "extra": 1}),
        ];
        for b in bad {
            assert!(item(b.clone()).is_err(), "{b}");
        }
    }
}
