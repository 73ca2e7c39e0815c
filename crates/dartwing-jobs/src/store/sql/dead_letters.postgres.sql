-- Dead letters of some organizations, PostgreSQL. $1 is the JSON array of their keys.

-- name: of_organizations
SELECT id, job_id, method, org_key, queue, reason, args, failed_at_us, retry_count, status,
    resolution_notes
FROM dead_letter WHERE org_key IN (SELECT jsonb_array_elements_text($1::jsonb))
ORDER BY failed_at_us DESC, id LIMIT $2;
