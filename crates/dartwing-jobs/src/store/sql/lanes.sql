-- Jobs: per (queue, organization) lanes (the rate window of claims) and the paused organizations
-- (Suspended ones), whose jobs no worker claims.

-- name: count_claims
-- $2 claims of organization $5 in queue $4: a window that started at or before $1 restarts at $3.
UPDATE job_lane SET
    window_count = CASE WHEN window_start_us <= $1 THEN $2 ELSE window_count + $2 END,
    window_start_us = CASE WHEN window_start_us <= $1 THEN $3 ELSE window_start_us END
WHERE queue = $4 AND org_key = $5;

-- name: uncount_claims
UPDATE job_lane SET window_count = CASE WHEN window_count > $1 THEN window_count - $1 ELSE 0 END
WHERE queue = $2 AND org_key = $3;

-- name: pause
INSERT INTO job_paused_org (org_key, paused_at_us) VALUES ($1, $2) ON CONFLICT (org_key) DO NOTHING;

-- name: resume
DELETE FROM job_paused_org WHERE org_key = $1;

-- Pauses recorded before $1 (a reconciliation keeps the ones recorded while it read the directory).
-- name: resume_paused_before
DELETE FROM job_paused_org WHERE paused_at_us < $1;
