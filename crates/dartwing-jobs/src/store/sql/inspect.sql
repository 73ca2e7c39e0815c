-- Jobs: what the API, the CLI and the gauges read.

-- name: info
SELECT id, method, status, queue, org_key, attempts, max_attempts, enqueued_at_us, run_at_us,
    started_at_us, finished_at_us, progress, error, output_reference
FROM job WHERE id = $1;

-- name: list
SELECT id, method, status, queue, org_key, attempts, max_attempts, enqueued_at_us, run_at_us,
    started_at_us, finished_at_us, progress, error, output_reference
FROM job ORDER BY enqueued_at_us DESC, id LIMIT $1;

-- name: list_with_status
SELECT id, method, status, queue, org_key, attempts, max_attempts, enqueued_at_us, run_at_us,
    started_at_us, finished_at_us, progress, error, output_reference
FROM job WHERE status = $1 ORDER BY enqueued_at_us DESC, id LIMIT $2;

-- name: queue_depths
SELECT queue, COUNT(*) AS depth FROM job WHERE status IN ('Pending', 'Queued') GROUP BY queue;

-- name: org_job_counts
SELECT org_key, queue, COUNT(*) AS jobs FROM job
WHERE status IN ('Pending', 'Queued', 'Running') GROUP BY org_key, queue;
