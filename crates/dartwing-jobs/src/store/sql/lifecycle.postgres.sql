-- Jobs: the life of a claimed job, PostgreSQL part. One statement records a batch of successful
-- attempts of worker $2; $3 is the JSON array of their ids, found by primary key (see claim.postgres.sql
-- on `= ANY(ARRAY(…))`).

-- name: complete
UPDATE job SET status = 'Completed', finished_at_us = $1, lease_until_us = NULL, error = NULL
WHERE worker = $2 AND status = 'Running' AND id = ANY(ARRAY(SELECT jsonb_array_elements_text($3::jsonb)));
