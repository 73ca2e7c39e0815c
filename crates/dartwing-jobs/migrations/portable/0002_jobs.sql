-- Background jobs: the job table, fair-queuing lanes, queue clocks, dead letters, cron ticks.
-- Times are microseconds since the Unix epoch.

CREATE TABLE job (
    id               TEXT PRIMARY KEY,
    queue            TEXT NOT NULL,
    method           TEXT NOT NULL,
    org_key          TEXT NOT NULL,
    args             TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    vtime            BIGINT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('Pending', 'Queued', 'Running', 'Completed', 'Failed', 'Canceled', 'Timed Out')),
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    run_at_us        BIGINT NOT NULL,
    enqueued_at_us   BIGINT NOT NULL,
    started_at_us    BIGINT,
    finished_at_us   BIGINT,
    lease_until_us   BIGINT,
    timeout_us       BIGINT NOT NULL,
    worker           TEXT,
    progress         TEXT,
    error            TEXT,
    dedup_key        TEXT,
    dedup_until_us   BIGINT,
    trace_id         TEXT,
    submitted_by     TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX job_ready ON job (queue, vtime, id) WHERE status = 'Queued';
CREATE INDEX job_due ON job (run_at_us) WHERE status = 'Pending';
CREATE INDEX job_running ON job (lease_until_us) WHERE status = 'Running';
CREATE INDEX job_by_org ON job (org_key, queue, status);
CREATE INDEX job_by_enqueue ON job (org_key, enqueued_at_us);
CREATE UNIQUE INDEX job_dedup ON job (org_key, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE job_lane (
    queue           TEXT NOT NULL,
    org_key         TEXT NOT NULL,
    last_vtime      BIGINT NOT NULL,
    window_start_us BIGINT NOT NULL,
    window_count    INTEGER NOT NULL,
    PRIMARY KEY (queue, org_key)
);

CREATE TABLE job_queue_clock (
    queue  TEXT PRIMARY KEY,
    vclock BIGINT NOT NULL
);
INSERT INTO job_queue_clock (queue, vclock) VALUES ('critical', 0), ('default', 0), ('bulk', 0);

CREATE TABLE dead_letter (
    id               TEXT PRIMARY KEY,
    job_id           TEXT NOT NULL,
    method           TEXT NOT NULL,
    org_key          TEXT NOT NULL,
    queue            TEXT NOT NULL,
    reason           TEXT NOT NULL,
    args             TEXT NOT NULL,
    failed_at_us     BIGINT NOT NULL,
    retry_count      INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('Pending', 'Retried', 'Resolved', 'Ignored')),
    resolution_notes TEXT,
    resolved_by      TEXT,
    resolved_at_us   BIGINT
);
CREATE INDEX dead_letter_by_status ON dead_letter (status, failed_at_us);
CREATE INDEX dead_letter_by_org ON dead_letter (org_key, failed_at_us);

CREATE TABLE cron_tick (
    name    TEXT NOT NULL,
    tick_us BIGINT NOT NULL,
    PRIMARY KEY (name, tick_us)
);
