-- Manual conflicts a batch stores and resolves, each bound as one JSON array (`json_each`): one
-- statement per batch whatever the number of conflicts.

-- name: insert
INSERT INTO sync_conflict (name, organization, doctype, docname, op_id, status, server_doc, client_doc,
                           created_at, created_by)
SELECT value ->> 'id', $1, value ->> 'doctype', value ->> 'docname', value ->> 'op_id', 'Open',
       value ->> 'server_doc', value ->> 'client_doc', $3, $4
  FROM json_each($2);

-- name: resolve
UPDATE sync_conflict
   SET status = 'Resolved', resolved_at = $3, resolved_by = $4, resolved_op_id = r.value ->> 'op_id'
  FROM json_each($2) AS r
 WHERE sync_conflict.organization = $1 AND sync_conflict.doctype = r.value ->> 'doctype'
   AND sync_conflict.docname = r.value ->> 'docname' AND sync_conflict.status = 'Open'
RETURNING doctype, docname;
