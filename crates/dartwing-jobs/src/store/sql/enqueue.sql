-- Jobs: enqueueing. Parameters are bound in the order of their numbers.

-- name: enter_lane
-- The lane row serializes enqueues of one organization and queue (so the pending cap is exact)
-- and gives its $3 due jobs their virtual start times: max(lane.last_vtime, queue clock) + 1 … + $3.
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

-- name: set_lane_vtime
-- After a set of enqueues: the lane's last virtual time once the jobs that were refused or turned
-- out to be duplicates gave theirs back (the lane row is still held by the transaction).
UPDATE job_lane SET last_vtime = $3 WHERE queue = $1 AND org_key = $2;

-- name: deduplicated
-- The job a duplicate answers, when a concurrent enqueue inserted it after the set read its keys.
SELECT id, queue FROM job WHERE org_key = $1 AND dedup_key = $2;

-- name: promote_due
-- Due Pending jobs (scheduled or backing off) become Queued at the queue clock, shifted by priority.
UPDATE job SET status = 'Queued',
    vtime = (SELECT vclock FROM job_queue_clock c WHERE c.queue = job.queue) + 1
        - CASE priority WHEN 3 THEN 256 WHEN 2 THEN 64 WHEN 0 THEN -64 ELSE 0 END
WHERE status = 'Pending' AND run_at_us <= $1;

-- name: release_dependents
-- Jobs waiting for a parent ($2: the waiting mark of run_at_us) whose parent Completed become due
-- now ($1); the promotion that follows queues them.
UPDATE job SET run_at_us = $1
WHERE status = 'Pending' AND depends_on IS NOT NULL AND run_at_us = $2
  AND EXISTS (SELECT 1 FROM job AS parent WHERE parent.id = job.depends_on AND parent.status = 'Completed');

-- name: cancel_orphaned_dependents
-- Jobs waiting for a parent that ended any other way, or is gone, are canceled at $1.
UPDATE job SET status = 'Canceled', finished_at_us = $1,
    error = 'its parent job ' || depends_on || ' did not complete'
WHERE status = 'Pending' AND depends_on IS NOT NULL AND run_at_us = $2
  AND NOT EXISTS (SELECT 1 FROM job AS parent WHERE parent.id = job.depends_on
                  AND parent.status IN ('Pending', 'Queued', 'Running', 'Completed'))
RETURNING id, method, org_key, submitted_by;
