-- Jobs: listings of some organizations, PostgreSQL. $1 is the JSON array of their keys.

-- name: list_of_organizations
SELECT id, method, status, queue, org_key, attempts, enqueued_at_us, started_at_us, finished_at_us,
    progress, error
FROM job WHERE org_key IN (SELECT jsonb_array_elements_text($1::jsonb))
ORDER BY enqueued_at_us DESC, id LIMIT $2;

-- name: list_of_organizations_with_status
SELECT id, method, status, queue, org_key, attempts, enqueued_at_us, started_at_us, finished_at_us,
    progress, error
FROM job WHERE org_key IN (SELECT jsonb_array_elements_text($1::jsonb)) AND status = $2
ORDER BY enqueued_at_us DESC, id LIMIT $3;
