-- A job may wait for another job of its organization (`depends_on`): it is stored Pending with
-- `run_at_us` at the far-future mark the engine uses for "waiting for its parent", released when
-- the parent completes and canceled when the parent ends any other way.
ALTER TABLE job ADD COLUMN depends_on TEXT;
CREATE INDEX job_waiting_on_parent ON job (run_at_us) WHERE depends_on IS NOT NULL AND status = 'Pending';
