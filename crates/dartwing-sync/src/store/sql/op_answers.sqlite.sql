-- The write queue's stored answers: the answer given to each op_id, so a replayed write gets the
-- same answer. A batch binds its op_ids, and its answers, as one JSON array (`json_each`).

-- name: stored
SELECT op_id, answer
  FROM sync_op
 WHERE organization = $1 AND op_id IN (SELECT value FROM json_each($2));

-- name: insert
INSERT INTO sync_op (organization, op_id, answer, applied_at)
SELECT $1, value ->> 'op_id', value ->> 'answer', $3
  FROM json_each($2);
