-- Dead letters: jobs that failed for good, kept for an administrator to retry, resolve or ignore.

-- name: insert
INSERT INTO dead_letter (id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Pending');

-- name: depth
SELECT COUNT(*) FROM dead_letter WHERE status = 'Pending';

-- name: all
SELECT id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status,
    resolution_notes
FROM dead_letter ORDER BY failed_at_us DESC, id LIMIT $1;

-- name: get
SELECT id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status,
    resolution_notes
FROM dead_letter WHERE id = $1;

-- name: settle
UPDATE dead_letter SET status = $1, resolution_notes = $2, resolved_by = $3, resolved_at_us = $4
WHERE id = $5 AND status = 'Pending';

-- name: of_job
-- The newest dead letter of job $1.
SELECT id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status,
    resolution_notes
FROM dead_letter WHERE job_id = $1 ORDER BY failed_at_us DESC, id LIMIT 1;
