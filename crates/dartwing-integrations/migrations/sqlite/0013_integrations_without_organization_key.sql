-- The token vault keeps no foreign key into tenancy's tables: when an organization is deleted, the
-- vault deletes its integrations and pending connect flows (on `AccessChange::OrganizationDeleted`).
-- The audit log never referenced the organization and is kept. SQLite drops a foreign key by
-- rebuilding the table.
CREATE TABLE organization_integration_0013 (
    organization       TEXT NOT NULL,
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
INSERT INTO organization_integration_0013 (organization, integration, status, access_token, refresh_token, key_id,
                                           expires_at_us, last_refreshed_us, last_attempt_us, error_message,
                                           connected_by, connected_at_us, scopes, refresh_lease_us,
                                           refresh_lease_by, modified_us)
SELECT organization, integration, status, access_token, refresh_token, key_id,
       expires_at_us, last_refreshed_us, last_attempt_us, error_message,
       connected_by, connected_at_us, scopes, refresh_lease_us,
       refresh_lease_by, modified_us
FROM organization_integration;
DROP TABLE organization_integration;
ALTER TABLE organization_integration_0013 RENAME TO organization_integration;
CREATE INDEX organization_integration_expiry ON organization_integration (expires_at_us) WHERE status = 'Connected';
CREATE INDEX organization_integration_key ON organization_integration (key_id);

CREATE TABLE integration_connect_state_0013 (
    state_hash     TEXT PRIMARY KEY,
    organization   TEXT NOT NULL,
    integration    TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    expires_at_us  BIGINT NOT NULL
);
INSERT INTO integration_connect_state_0013 (state_hash, organization, integration, requested_by, pkce_verifier,
                                            expires_at_us)
SELECT state_hash, organization, integration, requested_by, pkce_verifier, expires_at_us
FROM integration_connect_state;
DROP TABLE integration_connect_state;
ALTER TABLE integration_connect_state_0013 RENAME TO integration_connect_state;
