-- Retention of finished jobs: `jobs.purge_finished` deletes Completed, Failed, Canceled and Timed
-- Out jobs by finish time, keeping the jobs a dead letter still refers to.

CREATE INDEX job_finished ON job (finished_at_us) WHERE finished_at_us IS NOT NULL;
CREATE INDEX dead_letter_by_job ON dead_letter (job_id);
