-- Where a job's result is (a file path, URL or document name), as its handler records it; shown
-- as `output_reference` by the job API and in `job_status_changed`.
ALTER TABLE job ADD COLUMN output_reference TEXT;
