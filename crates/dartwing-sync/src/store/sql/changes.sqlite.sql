-- The change log: one row per applied change, with its feed row serialized once (`feed_row`). A
-- batch binds its changes as one JSON array (`json_each`).

-- name: insert
INSERT INTO sync_change (organization, seq, doctype, name, operation, data, docstatus, deleted, modified, feed_row)
SELECT $1, value ->> 'seq', value ->> 'doctype', value ->> 'name', value ->> 'operation',
       value ->> 'data', value ->> 'docstatus', value ->> 'deleted', value ->> 'modified', value ->> 'feed_row'
  FROM json_each($2);
