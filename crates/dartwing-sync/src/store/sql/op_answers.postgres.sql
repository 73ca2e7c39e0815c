-- The write queue's stored answers: the answer given to each op_id, so a replayed write gets the
-- same answer. A batch binds its op_ids, and its answers, as one JSON array; a lookup probes the
-- index once per bound op_id (`LATERAL … LIMIT 1`, see documents.postgres.sql).

-- name: stored
SELECT o.op_id, o.answer
  FROM json_array_elements_text($2::json) AS k (op_id)
 CROSS JOIN LATERAL (SELECT op_id, answer FROM sync_op
                      WHERE organization = $1 AND op_id = k.op_id
                      LIMIT 1) AS o;

-- name: insert
INSERT INTO sync_op (organization, op_id, answer, applied_at)
SELECT $1, op_id, answer, $3
  FROM json_to_recordset($2::json) AS r (op_id TEXT, answer TEXT);
