-- Jobs keep no foreign key into tenancy's tables: when an organization is deleted, jobs delete its
-- webhook signing secret and allowed hosts (on `AccessChange::OrganizationDeleted`). SQLite drops a
-- foreign key by rebuilding the table.
CREATE TABLE webhook_signing_secret_0011 (
    organization  TEXT PRIMARY KEY,
    secret        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
INSERT INTO webhook_signing_secret_0011 (organization, secret, created_at_us)
SELECT organization, secret, created_at_us
FROM webhook_signing_secret;
DROP TABLE webhook_signing_secret;
ALTER TABLE webhook_signing_secret_0011 RENAME TO webhook_signing_secret;

CREATE TABLE webhook_allowed_host_0011 (
    organization TEXT NOT NULL,
    pattern      TEXT NOT NULL,
    PRIMARY KEY (organization, pattern)
);
INSERT INTO webhook_allowed_host_0011 (organization, pattern)
SELECT organization, pattern
FROM webhook_allowed_host;
DROP TABLE webhook_allowed_host;
ALTER TABLE webhook_allowed_host_0011 RENAME TO webhook_allowed_host;
