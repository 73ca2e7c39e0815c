-- Manual conflicts a batch stores and resolves, each bound as one JSON array (`json_to_recordset`):
-- one statement per batch whatever the number of conflicts.

-- name: insert
INSERT INTO sync_conflict (name, organization, doctype, docname, op_id, status, server_doc, client_doc,
                           created_at, created_by)
SELECT id, $1, doctype, docname, op_id, 'Open', server_doc, client_doc, $3, $4
  FROM json_to_recordset($2::json) AS r (id TEXT, doctype TEXT, docname TEXT, op_id TEXT,
       server_doc TEXT, client_doc TEXT);

-- name: resolve
UPDATE sync_conflict AS c
   SET status = 'Resolved', resolved_at = $3, resolved_by = $4, resolved_op_id = r.op_id
  FROM json_to_recordset($2::json) AS r (doctype TEXT, docname TEXT, op_id TEXT)
 WHERE c.organization = $1 AND c.doctype = r.doctype AND c.docname = r.docname AND c.status = 'Open'
RETURNING c.doctype, c.docname;
