-- Sync documents: the current version of each document and its version history. A batch binds
-- its keys, and its rows, as one JSON array (`json_to_recordset`), so one statement carries any
-- number. Lookups drive from the bound keys through a `LATERAL … LIMIT 1` subquery: one index
-- probe per key whatever the plan cache guesses about the table's size (a generic plan that
-- scans the organization's documents instead grows with every document written).

-- name: current
SELECT d.doctype, d.name, d.organization, d.data, d.docstatus, d.deleted, d.version, d.change_seq,
       d.creation, d.modified, d.owner, d.modified_by
  FROM json_to_recordset($2::json) AS k (doctype TEXT, name TEXT)
 CROSS JOIN LATERAL (SELECT * FROM sync_document
                      WHERE organization = $1 AND doctype = k.doctype AND name = k.name
                      LIMIT 1) AS d;

-- name: versions_at
SELECT v.doctype, v.name, v.modified, v.data
  FROM json_to_recordset($2::json) AS k (doctype TEXT, name TEXT, modified BIGINT)
 CROSS JOIN LATERAL (SELECT doctype, name, modified, data FROM sync_version
                      WHERE organization = $1 AND doctype = k.doctype AND name = k.name
                        AND modified = k.modified
                      LIMIT 1) AS v;

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
