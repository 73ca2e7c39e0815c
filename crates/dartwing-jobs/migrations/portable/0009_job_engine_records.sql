-- The job engine keeps its own records: worker heartbeats (one µs timestamp encoding), and the
-- organizations whose jobs are paused (Suspended organizations), kept from access-change
-- notifications instead of reading the tenancy tables.
CREATE TABLE job_worker_heartbeat (
    worker_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    last_beat_us BIGINT NOT NULL
);

CREATE INDEX job_worker_heartbeat_by_node ON job_worker_heartbeat (node_id);

CREATE TABLE job_paused_org (
    org_key TEXT PRIMARY KEY,
    paused_at_us BIGINT NOT NULL
);
