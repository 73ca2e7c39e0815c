-- Sync documents: the current version of each document and its version history. A batch binds
-- its keys, and its rows, as one JSON array (`json_each`), so one statement carries any number.
-- Lookups drive from the bound keys (`CROSS JOIN` keeps them the outer loop): one index probe per
-- key.

-- name: current
SELECT d.doctype, d.name, d.organization, d.data, d.docstatus, d.deleted, d.version, d.change_seq,
       d.creation, d.modified, d.owner, d.modified_by
  FROM json_each($2) AS k
 CROSS JOIN sync_document AS d
 WHERE d.organization = $1 AND d.doctype = k.value ->> 'doctype' AND d.name = k.value ->> 'name';

-- name: versions_at
SELECT v.doctype, v.name, v.modified, v.data
  FROM json_each($2) AS k
 CROSS JOIN sync_version AS v
 WHERE v.organization = $1 AND v.doctype = k.value ->> 'doctype' AND v.name = k.value ->> 'name'
   AND v.modified = k.value ->> 'modified';

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
