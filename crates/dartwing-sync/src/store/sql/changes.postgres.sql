-- The change log: one row per applied change, with its feed row serialized once (`feed_row`). A
-- batch binds its changes as one JSON array (`json_to_recordset`).

-- name: insert
INSERT INTO sync_change (organization, seq, doctype, name, operation, data, docstatus, deleted, modified, feed_row)
SELECT $1, seq, doctype, name, operation, data, docstatus, deleted, modified, feed_row
  FROM json_to_recordset($2::json) AS r (seq BIGINT, doctype TEXT, name TEXT, operation TEXT, data TEXT,
       docstatus BIGINT, deleted BIGINT, modified BIGINT, feed_row TEXT);
