-- Jobs: the life of a claimed job (retry, failure, cancellation, leases, recovery) and of its
-- progress. A worker changes only the jobs it still holds (`worker = ... AND status = 'Running'`).

-- name: retry
UPDATE job SET status = 'Pending', run_at_us = $1, error = $2, worker = NULL, lease_until_us = NULL
WHERE id = $3 AND worker = $4 AND status = 'Running';

-- name: finish_failed
UPDATE job SET status = $1, finished_at_us = $2, error = $3, lease_until_us = NULL
WHERE id = $4 AND worker = $5 AND status = 'Running';

-- name: mark_canceled
UPDATE job SET status = 'Canceled', finished_at_us = $1, lease_until_us = NULL
WHERE id = $2 AND worker = $3 AND status = 'Running';

-- name: renew_leases
UPDATE job SET lease_until_us = $1 WHERE worker = $2 AND status = 'Running';

-- name: release
-- A stopping worker's running jobs go back to the queue at the queue clock, the attempt uncounted.
UPDATE job SET status = 'Queued', attempts = attempts - 1, worker = NULL, lease_until_us = NULL,
    started_at_us = NULL, vtime = (SELECT vclock FROM job_queue_clock c WHERE c.queue = job.queue)
WHERE worker = $1 AND status = 'Running';

-- name: cancel_requests
SELECT id FROM job WHERE worker = $1 AND status = 'Running' AND cancel_requested = 1;

-- name: stuck
-- Running jobs whose lease expired, or that run longer than twice their timeout.
SELECT id, queue, method, org_key, args, attempts, max_attempts, timeout_us, lease_until_us,
    trace_id, submitted_by, enqueued_at_us, worker
FROM job
WHERE status = 'Running' AND (lease_until_us < $1 OR started_at_us + 2 * timeout_us < $1);

-- name: set_progress
UPDATE job SET progress = $1 WHERE id = $2;

-- name: set_output_reference
UPDATE job SET output_reference = $1 WHERE id = $2;

-- name: cancel_waiting
UPDATE job SET status = 'Canceled', finished_at_us = $1 WHERE id = $2 AND status IN ('Pending', 'Queued');

-- name: request_cancel
UPDATE job SET cancel_requested = 1 WHERE id = $1 AND status = 'Running';
