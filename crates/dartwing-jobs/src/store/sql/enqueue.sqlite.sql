-- Jobs: enqueueing a set of jobs, SQLite part. $1/$2 are JSON arrays bound as one parameter:
-- [org_key, dedup_key] pairs, or the job rows ({"id": …, "queue": …, …}).

-- name: release_dedup_keys
-- Dedup keys whose window ended at or before $1 stop suppressing duplicates.
UPDATE job SET dedup_key = NULL
WHERE dedup_key IS NOT NULL AND dedup_until_us <= $1
  AND (org_key, dedup_key) IN
      (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($2));

-- name: existing_dedup_keys
SELECT org_key, dedup_key, id, queue FROM job
WHERE dedup_key IS NOT NULL
  AND (org_key, dedup_key) IN
      (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1));

-- name: insert_many
-- One multi-row insert; a row whose dedup key a concurrent enqueue took is skipped (not returned).
-- (`WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.)
INSERT INTO job (id, queue, method, org_key, args, priority, vtime, status, attempts, max_attempts,
                 run_at_us, enqueued_at_us, timeout_us, dedup_key, dedup_until_us, trace_id, submitted_by,
                 depends_on)
SELECT json_extract(value, '$.id'), json_extract(value, '$.queue'), json_extract(value, '$.method'),
       json_extract(value, '$.org_key'), json_extract(value, '$.args'), json_extract(value, '$.priority'),
       json_extract(value, '$.vtime'), json_extract(value, '$.status'), 0,
       json_extract(value, '$.max_attempts'), json_extract(value, '$.run_at_us'),
       json_extract(value, '$.enqueued_at_us'), json_extract(value, '$.timeout_us'),
       json_extract(value, '$.dedup_key'), json_extract(value, '$.dedup_until_us'),
       json_extract(value, '$.trace_id'), json_extract(value, '$.submitted_by'), json_extract(value, '$.depends_on')
FROM json_each($1) WHERE true
ON CONFLICT (org_key, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
RETURNING id;
