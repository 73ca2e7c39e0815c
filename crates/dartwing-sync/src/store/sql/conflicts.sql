-- Manual conflicts: stored when a write meets a newer version under the manual-resolve strategy,
-- resolved by a later forced write of the same document.

-- name: insert
INSERT INTO sync_conflict (name, organization, doctype, docname, op_id, status, server_doc, client_doc,
                           created_at, created_by)
VALUES ($1, $2, $3, $4, $5, 'Open', $6, $7, $8, $9);

-- name: resolve
UPDATE sync_conflict
   SET status = 'Resolved', resolved_at = $5, resolved_by = $6, resolved_op_id = $4
 WHERE organization = $1 AND doctype = $2 AND docname = $3 AND status = 'Open';

-- name: list
SELECT name, doctype, docname, op_id, status, server_doc, client_doc, created_at, created_by,
       resolved_at, resolved_by
  FROM sync_conflict
 WHERE organization = $1 AND status = $2
 ORDER BY created_at, name
 LIMIT $3;

-- name: list_of_doctype
SELECT name, doctype, docname, op_id, status, server_doc, client_doc, created_at, created_by,
       resolved_at, resolved_by
  FROM sync_conflict
 WHERE organization = $1 AND status = $2 AND doctype = $4
 ORDER BY created_at, name
 LIMIT $3;
