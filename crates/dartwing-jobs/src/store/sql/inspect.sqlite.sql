-- Jobs: listings of some organizations, SQLite. $1 is the JSON array of their keys.

-- name: list_of_organizations
SELECT id, method, status, queue, org_key, attempts, max_attempts, enqueued_at_us, run_at_us,
    started_at_us, finished_at_us, progress, error, output_reference
FROM job WHERE org_key IN (SELECT value FROM json_each($1))
ORDER BY enqueued_at_us DESC, id LIMIT $2;

-- name: list_of_organizations_with_status
SELECT id, method, status, queue, org_key, attempts, max_attempts, enqueued_at_us, run_at_us,
    started_at_us, finished_at_us, progress, error, output_reference
FROM job WHERE org_key IN (SELECT value FROM json_each($1)) AND status = $2
ORDER BY enqueued_at_us DESC, id LIMIT $3;

-- name: page
-- A page of jobs, newest first: of the organizations in $1 (NULL: all), with a status in $2 (a
-- JSON array; NULL: any) and of job type $3 (NULL: any), $4 rows from offset $5.
SELECT id, method, status, queue, org_key, attempts, max_attempts, enqueued_at_us, run_at_us,
    started_at_us, finished_at_us, progress, error, output_reference
FROM job
WHERE ($1 IS NULL OR org_key IN (SELECT value FROM json_each($1)))
  AND ($2 IS NULL OR status IN (SELECT value FROM json_each($2)))
  AND ($3 IS NULL OR method = $3)
ORDER BY enqueued_at_us DESC, id LIMIT $4 OFFSET $5;

-- name: page_total
-- How many jobs `page` pages through ($1–$3 as there).
SELECT COUNT(*) FROM job
WHERE ($1 IS NULL OR org_key IN (SELECT value FROM json_each($1)))
  AND ($2 IS NULL OR status IN (SELECT value FROM json_each($2)))
  AND ($3 IS NULL OR method = $3);

-- name: status_counts
-- Jobs per status, of the organizations in $1 (NULL: all).
SELECT status, COUNT(*) AS jobs FROM job WHERE ($1 IS NULL OR org_key IN (SELECT value FROM json_each($1))) GROUP BY status;

-- name: waiting_by_priority
-- Pending and Queued jobs per priority (0 Low … 3 Critical), of the organizations in $1.
SELECT priority, COUNT(*) AS jobs FROM job
WHERE ($1 IS NULL OR org_key IN (SELECT value FROM json_each($1))) AND status IN ('Pending', 'Queued') GROUP BY priority;

-- name: finished_since
-- Jobs of the organizations in $1 that finished at or after $2 (µs), newest first, at most $3:
-- their type, final status and run time of the last attempt.
SELECT method, status, finished_at_us - started_at_us AS run_us FROM job
WHERE ($1 IS NULL OR org_key IN (SELECT value FROM json_each($1))) AND finished_at_us >= $2 AND started_at_us IS NOT NULL
ORDER BY finished_at_us DESC LIMIT $3;
