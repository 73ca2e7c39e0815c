-- Sync documents: the current version of each document and its version history. A batch binds
-- its names, and its rows, as one JSON array (`json_each`), so one statement carries any number.

-- name: current
SELECT doctype, name, organization, data, docstatus, deleted, version, change_seq, creation, modified,
       owner, modified_by
  FROM sync_document
 WHERE organization = $1 AND doctype = $2 AND name IN (SELECT value FROM json_each($3));

-- name: version_at
SELECT data
  FROM sync_version
 WHERE organization = $1 AND doctype = $2 AND name = $3 AND modified = $4;

-- name: upsert
INSERT INTO sync_document (doctype, name, organization, data, docstatus, deleted, version, change_seq,
                           creation, modified, owner, modified_by)
SELECT value ->> 'doctype', value ->> 'name', value ->> 'organization', value ->> 'data',
       value ->> 'docstatus', value ->> 'deleted', value ->> 'version', value ->> 'change_seq',
       value ->> 'creation', value ->> 'modified', value ->> 'owner', value ->> 'modified_by'
  FROM json_each($1)
 WHERE true
ON CONFLICT (organization, doctype, name) DO UPDATE
   SET data = excluded.data, docstatus = excluded.docstatus, deleted = excluded.deleted,
       version = excluded.version, change_seq = excluded.change_seq, modified = excluded.modified,
       modified_by = excluded.modified_by;

-- name: insert_versions
INSERT INTO sync_version (doctype, name, version, organization, operation, data, docstatus, deleted,
                          modified, modified_by, op_id, note)
SELECT value ->> 'doctype', value ->> 'name', value ->> 'version', $1, value ->> 'operation',
       value ->> 'data', value ->> 'docstatus', value ->> 'deleted', value ->> 'modified',
       value ->> 'modified_by', value ->> 'op_id', value ->> 'note'
  FROM json_each($2);

-- name: holders
SELECT organization
  FROM sync_document
 WHERE doctype = $1 AND name = $2
 ORDER BY organization;

-- name: holders_among
SELECT organization
  FROM sync_document
 WHERE doctype = $1 AND name = $2 AND organization IN (SELECT value FROM json_each($3))
 ORDER BY organization;
