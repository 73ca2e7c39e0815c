-- Jobs: enqueueing a set of jobs, PostgreSQL part. $1/$2 are JSON arrays bound as one parameter:
-- [org_key, dedup_key] pairs, or the job rows ({"id": …, "queue": …, …}).

-- name: release_dedup_keys
-- Dedup keys whose window ended at or before $1 stop suppressing duplicates.
UPDATE job SET dedup_key = NULL
WHERE dedup_key IS NOT NULL AND dedup_until_us <= $1
  AND (org_key, dedup_key) IN (SELECT k->>0, k->>1 FROM json_array_elements($2::json) AS k);

-- name: existing_dedup_keys
SELECT org_key, dedup_key, id, queue FROM job
WHERE dedup_key IS NOT NULL
  AND (org_key, dedup_key) IN (SELECT k->>0, k->>1 FROM json_array_elements($1::json) AS k);

-- name: insert_many
-- One multi-row insert; a row whose dedup key a concurrent enqueue took is skipped (not returned).
INSERT INTO job (id, queue, method, org_key, args, priority, vtime, status, attempts, max_attempts,
                 run_at_us, enqueued_at_us, timeout_us, dedup_key, dedup_until_us, trace_id, submitted_by,
                 depends_on)
SELECT j->>'id', j->>'queue', j->>'method', j->>'org_key', j->>'args', (j->>'priority')::integer,
       (j->>'vtime')::bigint, j->>'status', 0, (j->>'max_attempts')::integer, (j->>'run_at_us')::bigint,
       (j->>'enqueued_at_us')::bigint, (j->>'timeout_us')::bigint, j->>'dedup_key',
       (j->>'dedup_until_us')::bigint, j->>'trace_id', j->>'submitted_by', j->>'depends_on'
FROM json_array_elements($1::json) AS j
ON CONFLICT (org_key, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
RETURNING id;
