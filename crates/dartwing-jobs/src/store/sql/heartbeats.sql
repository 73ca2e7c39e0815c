-- Jobs: worker heartbeats, one row per live worker.

-- name: beat
INSERT INTO job_worker_heartbeat (worker_id, node_id, queue, started_at_us, last_beat_us)
VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (worker_id) DO UPDATE SET last_beat_us = excluded.last_beat_us;

-- name: clear_node
DELETE FROM job_worker_heartbeat WHERE node_id = $1;

-- name: remove
DELETE FROM job_worker_heartbeat WHERE worker_id = $1;

-- name: all
SELECT worker_id, node_id, last_beat_us FROM job_worker_heartbeat;
