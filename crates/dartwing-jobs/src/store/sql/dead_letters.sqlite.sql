-- Dead letters of some organizations, SQLite. $1 is the JSON array of their keys.

-- name: of_organizations
SELECT id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status,
    resolution_notes
FROM dead_letter WHERE org_key IN (SELECT value FROM json_each($1))
ORDER BY failed_at_us DESC, id LIMIT $2;
