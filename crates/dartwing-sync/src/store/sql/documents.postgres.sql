-- Sync documents: the current version of each document and its version history. A batch binds
-- its names, and its rows, as one JSON array (`json_to_recordset`), so one statement carries any
-- number.

-- name: current
SELECT doctype, name, organization, data, docstatus, deleted, version, change_seq, creation, modified,
       owner, modified_by
  FROM sync_document
 WHERE organization = $1 AND doctype = $2 AND name IN (SELECT json_array_elements_text($3::json));

-- name: version_at
SELECT data
  FROM sync_version
 WHERE organization = $1 AND doctype = $2 AND name = $3 AND modified = $4;

-- name: upsert
INSERT INTO sync_document (doctype, name, organization, data, docstatus, deleted, version, change_seq,
                           creation, modified, owner, modified_by)
SELECT doctype, name, organization, data, docstatus, deleted, version, change_seq,
       creation, modified, owner, modified_by
  FROM json_to_recordset($1::json) AS r (doctype TEXT, name TEXT, organization TEXT, data TEXT,
       docstatus BIGINT, deleted BIGINT, version BIGINT, change_seq BIGINT, creation BIGINT,
       modified BIGINT, owner TEXT, modified_by TEXT)
ON CONFLICT (organization, doctype, name) DO UPDATE
   SET data = excluded.data, docstatus = excluded.docstatus, deleted = excluded.deleted,
       version = excluded.version, change_seq = excluded.change_seq, modified = excluded.modified,
       modified_by = excluded.modified_by;

-- name: insert_versions
INSERT INTO sync_version (doctype, name, version, organization, operation, data, docstatus, deleted,
                          modified, modified_by, op_id, note)
SELECT doctype, name, version, $1, operation, data, docstatus, deleted, modified, modified_by, op_id, note
  FROM json_to_recordset($2::json) AS r (doctype TEXT, name TEXT, version BIGINT, operation TEXT,
       data TEXT, docstatus BIGINT, deleted BIGINT, modified BIGINT, modified_by TEXT, op_id TEXT,
       note TEXT);

-- name: holders
SELECT organization
  FROM sync_document
 WHERE doctype = $1 AND name = $2
 ORDER BY organization;

-- name: holders_among
SELECT organization
  FROM sync_document
 WHERE doctype = $1 AND name = $2 AND organization IN (SELECT json_array_elements_text($3::json))
 ORDER BY organization;
