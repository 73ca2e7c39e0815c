-- Manual conflicts: stored when a write meets a newer version under the manual-resolve strategy,
-- resolved by a later forced write of the same document (written by the statements of
-- conflict_writes.*.sql).

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
