-- Jobs: retention of finished jobs and settled dead letters.

-- name: purge_finished
-- At most $2 jobs finished before $1, except those a dead letter still refers to.
DELETE FROM job WHERE id IN (
    SELECT j.id FROM job j
    WHERE j.finished_at_us < $1 AND j.status IN ('Completed', 'Failed', 'Canceled', 'Timed Out')
      AND NOT EXISTS (SELECT 1 FROM dead_letter d WHERE d.job_id = j.id)
    LIMIT $2);

-- name: purge_dead_letters
DELETE FROM dead_letter WHERE status IN ('Resolved', 'Ignored') AND failed_at_us < $1;
