-- Jobs: claiming, PostgreSQL. A claim marks up to $5 Queued jobs of queue $4 Running for worker
-- $3 in fair (vtime) order, skipping paused organizations, and advances the queue clock to the
-- largest claimed vtime in the same statement. That one statement's commit does not wait for its
-- WAL flush (`set_config(..., true)` applies to the statement's own transaction, evaluated for
-- every row it returns): one round trip and no fsync per claim. A claim lost in a server crash
-- only puts the job back in the queue (at least once), and any later durable commit (a
-- completion, a failure) flushes the WAL up to and including the claim.
-- Parameters: $1 now (µs), $2 lease end (µs), $3 worker, $4 queue, $5 limit; rate-limited
-- claims: $6 start of the current rate window (µs), $7 claims allowed per window; claims with
-- exclusions: the excluded organizations as a JSON array, then the vtime window past the clock.
-- `id = ANY(ARRAY(…))`, not `id IN (…)`: the claimed ids are computed first and the rows found by
-- primary key. With `IN`, PostgreSQL's generic plan of a prepared statement (used after a few
-- executions) expects a thousand ids and joins them against a sequential scan of the whole job
-- table, finished jobs included: a claim then cost milliseconds per ten thousand jobs kept.

-- name: claim
WITH claimed AS (
    UPDATE job SET status = 'Running', attempts = attempts + 1, started_at_us = $1, lease_until_us = $2,
        worker = $3, cancel_requested = 0
    WHERE id = ANY(ARRAY(
        SELECT id FROM job
        WHERE queue = $4 AND status = 'Queued'
          AND org_key NOT IN (SELECT org_key FROM job_paused_org)
        ORDER BY vtime, id LIMIT $5 FOR UPDATE SKIP LOCKED))
    RETURNING id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
        enqueued_at_us, vtime),
clock AS (
    UPDATE job_queue_clock SET vclock = (SELECT MAX(vtime) FROM claimed)
    WHERE queue = $4 AND vclock < (SELECT MAX(vtime) FROM claimed))
SELECT id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
    enqueued_at_us, vtime
FROM claimed
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL;

-- name: claim_rate_limited
WITH claimed AS (
    UPDATE job SET status = 'Running', attempts = attempts + 1, started_at_us = $1, lease_until_us = $2,
        worker = $3, cancel_requested = 0
    WHERE id = ANY(ARRAY(
        SELECT id FROM job
        WHERE queue = $4 AND status = 'Queued'
          AND org_key NOT IN (SELECT org_key FROM job_paused_org)
          AND org_key NOT IN (SELECT org_key FROM job_lane
                              WHERE queue = $4 AND window_start_us > $6 AND window_count >= $7)
        ORDER BY vtime, id LIMIT $5 FOR UPDATE SKIP LOCKED))
    RETURNING id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
        enqueued_at_us, vtime),
clock AS (
    UPDATE job_queue_clock SET vclock = (SELECT MAX(vtime) FROM claimed)
    WHERE queue = $4 AND vclock < (SELECT MAX(vtime) FROM claimed))
SELECT id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
    enqueued_at_us, vtime
FROM claimed
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL;

-- name: claim_except
-- $6 excluded organizations (JSON array), $7 vtime window past the queue clock.
WITH claimed AS (
    UPDATE job SET status = 'Running', attempts = attempts + 1, started_at_us = $1, lease_until_us = $2,
        worker = $3, cancel_requested = 0
    WHERE id = ANY(ARRAY(
        SELECT id FROM job
        WHERE queue = $4 AND status = 'Queued'
          AND org_key NOT IN (SELECT org_key FROM job_paused_org)
          AND org_key NOT IN (SELECT jsonb_array_elements_text($6::jsonb))
          AND vtime <= (SELECT vclock FROM job_queue_clock WHERE queue = $4) + $7
        ORDER BY vtime, id LIMIT $5 FOR UPDATE SKIP LOCKED))
    RETURNING id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
        enqueued_at_us, vtime),
clock AS (
    UPDATE job_queue_clock SET vclock = (SELECT MAX(vtime) FROM claimed)
    WHERE queue = $4 AND vclock < (SELECT MAX(vtime) FROM claimed))
SELECT id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
    enqueued_at_us, vtime
FROM claimed
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL;

-- name: claim_except_rate_limited
-- $8 excluded organizations (JSON array), $9 vtime window past the queue clock.
WITH claimed AS (
    UPDATE job SET status = 'Running', attempts = attempts + 1, started_at_us = $1, lease_until_us = $2,
        worker = $3, cancel_requested = 0
    WHERE id = ANY(ARRAY(
        SELECT id FROM job
        WHERE queue = $4 AND status = 'Queued'
          AND org_key NOT IN (SELECT org_key FROM job_paused_org)
          AND org_key NOT IN (SELECT org_key FROM job_lane
                              WHERE queue = $4 AND window_start_us > $6 AND window_count >= $7)
          AND org_key NOT IN (SELECT jsonb_array_elements_text($8::jsonb))
          AND vtime <= (SELECT vclock FROM job_queue_clock WHERE queue = $4) + $9
        ORDER BY vtime, id LIMIT $5 FOR UPDATE SKIP LOCKED))
    RETURNING id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
        enqueued_at_us, vtime),
clock AS (
    UPDATE job_queue_clock SET vclock = (SELECT MAX(vtime) FROM claimed)
    WHERE queue = $4 AND vclock < (SELECT MAX(vtime) FROM claimed))
SELECT id, method, org_key, args, attempts, max_attempts, timeout_us, trace_id, submitted_by,
    enqueued_at_us, vtime
FROM claimed
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL;

-- name: unclaim
-- Jobs $2 (JSON array of ids) that worker $1 claimed but will not run go back as never claimed.
UPDATE job SET status = 'Queued', attempts = attempts - 1, worker = NULL, lease_until_us = NULL,
    started_at_us = NULL
WHERE worker = $1 AND status = 'Running' AND id = ANY(ARRAY(SELECT jsonb_array_elements_text($2::jsonb)));
