-- Jobs: enqueueing. Parameters are bound in the order of their numbers.

-- name: enter_lane
-- The lane row serializes enqueues of one organization and queue (so the pending cap is exact)
-- and gives a due job its virtual start time: max(lane.last_vtime, queue clock) + $3.
INSERT INTO job_lane (queue, org_key, last_vtime, window_start_us, window_count)
VALUES ($1, $2, (SELECT vclock FROM job_queue_clock WHERE queue = $1) + $3, 0, 0)
ON CONFLICT (queue, org_key) DO UPDATE SET last_vtime = CASE
    WHEN job_lane.last_vtime + $3 > excluded.last_vtime THEN job_lane.last_vtime + $3
    ELSE excluded.last_vtime
END
RETURNING last_vtime;

-- name: pending_count
SELECT COUNT(*) FROM job
WHERE org_key = $1 AND queue = $2 AND status IN ('Pending', 'Queued', 'Running');

-- name: release_dedup_key
UPDATE job SET dedup_key = NULL WHERE org_key = $1 AND dedup_key = $2 AND dedup_until_us <= $3;

-- name: insert
INSERT INTO job (id, queue, method, org_key, args, priority, vtime, status, attempts, max_attempts,
                 run_at_us, enqueued_at_us, timeout_us, dedup_key, dedup_until_us, trace_id, submitted_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (org_key, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING;

-- name: deduplicated
SELECT id, queue FROM job WHERE org_key = $1 AND dedup_key = $2;

-- name: promote_due
-- Due Pending jobs (scheduled or backing off) become Queued at the queue clock, shifted by priority.
UPDATE job SET status = 'Queued',
    vtime = (SELECT vclock FROM job_queue_clock c WHERE c.queue = job.queue) + 1
        - CASE priority WHEN 3 THEN 256 WHEN 2 THEN 64 WHEN 0 THEN -64 ELSE 0 END
WHERE status = 'Pending' AND run_at_us <= $1;
