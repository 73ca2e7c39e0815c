-- Webhook delivery (jobs capability): each organization's signing secret and the hosts its
-- deliveries may go to. Times are microseconds since the Unix epoch.

CREATE TABLE webhook_signing_secret (
    organization  TEXT PRIMARY KEY REFERENCES organization (name) ON DELETE CASCADE,
    secret        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

CREATE TABLE webhook_allowed_host (
    organization TEXT NOT NULL REFERENCES organization (name) ON DELETE CASCADE,
    pattern      TEXT NOT NULL,
    PRIMARY KEY (organization, pattern)
);
