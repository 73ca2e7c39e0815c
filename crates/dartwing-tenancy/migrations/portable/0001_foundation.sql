-- Tenancy, service API keys, naming series and worker heartbeats.
-- Timestamps are ISO 8601 UTC text with microseconds (they sort in time order).

CREATE TABLE organization (
    name        TEXT PRIMARY KEY,
    org_name    TEXT NOT NULL,
    org_type    TEXT NOT NULL CHECK (org_type IN ('Family', 'Company', 'Association', 'Nonprofit')),
    status      TEXT NOT NULL CHECK (status IN ('Active', 'Suspended')),
    creation    TEXT NOT NULL,
    modified    TEXT NOT NULL,
    owner       TEXT NOT NULL,
    modified_by TEXT NOT NULL
);

CREATE TABLE person (
    name          TEXT PRIMARY KEY,
    primary_email TEXT NOT NULL UNIQUE,
    full_name     TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    creation      TEXT NOT NULL,
    modified      TEXT NOT NULL,
    owner         TEXT NOT NULL,
    modified_by   TEXT NOT NULL
);

CREATE TABLE org_member (
    name         TEXT PRIMARY KEY,
    person       TEXT NOT NULL REFERENCES person (name),
    organization TEXT NOT NULL REFERENCES organization (name),
    role         TEXT NOT NULL CHECK (role IN ('Owner', 'Admin', 'Member', 'Guest')),
    status       TEXT NOT NULL CHECK (status IN ('Active', 'Inactive', 'Pending')),
    creation     TEXT NOT NULL,
    modified     TEXT NOT NULL,
    owner        TEXT NOT NULL,
    modified_by  TEXT NOT NULL,
    UNIQUE (person, organization)
);
CREATE INDEX org_member_by_organization ON org_member (organization);

CREATE TABLE api_key (
    api_key       TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    organization  TEXT REFERENCES organization (name),
    description   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    revoked_at    TEXT
);

CREATE TABLE naming_series (
    prefix  TEXT PRIMARY KEY,
    current BIGINT NOT NULL
);

CREATE TABLE worker_heartbeat (
    worker_id    TEXT PRIMARY KEY,
    node_id      TEXT NOT NULL,
    queue        TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    last_beat_us BIGINT NOT NULL
);
CREATE INDEX worker_heartbeat_by_node ON worker_heartbeat (node_id);
