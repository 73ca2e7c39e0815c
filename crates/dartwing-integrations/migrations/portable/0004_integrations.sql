-- Integration token vault (SPEC §6): one row per (organization, integration) with encrypted
-- tokens, pending OAuth connect flows, and the audit log of token operations.
-- Times are microseconds since the Unix epoch. Token columns hold `v1:<key id>:<base64>`
-- AES-256-GCM ciphertexts, never plaintext.

CREATE TABLE organization_integration (
    organization       TEXT NOT NULL REFERENCES organization (name) ON DELETE CASCADE,
    integration        TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('Connected', 'Expired', 'Error', 'Disconnected')),
    access_token       TEXT,
    refresh_token      TEXT,
    key_id             TEXT,
    expires_at_us      BIGINT,
    last_refreshed_us  BIGINT,
    last_attempt_us    BIGINT,
    error_message      TEXT,
    connected_by       TEXT,
    connected_at_us    BIGINT,
    scopes             TEXT,
    refresh_lease_us   BIGINT,
    refresh_lease_by   TEXT,
    modified_us        BIGINT NOT NULL,
    PRIMARY KEY (organization, integration)
);
CREATE INDEX organization_integration_expiry ON organization_integration (expires_at_us) WHERE status = 'Connected';
CREATE INDEX organization_integration_key ON organization_integration (key_id);

CREATE TABLE integration_connect_state (
    state_hash     TEXT PRIMARY KEY,
    organization   TEXT NOT NULL REFERENCES organization (name) ON DELETE CASCADE,
    integration    TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    expires_at_us  BIGINT NOT NULL
);

CREATE TABLE integration_audit (
    id            TEXT PRIMARY KEY,
    organization  TEXT NOT NULL,
    integration   TEXT NOT NULL,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    detail        TEXT,
    at_us         BIGINT NOT NULL
);
CREATE INDEX integration_audit_by_org ON integration_audit (organization, integration, at_us);
