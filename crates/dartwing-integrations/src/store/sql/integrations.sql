-- Organization Integration rows: reading them, connecting and disconnecting.
-- Token columns only ever receive ciphertexts from the key ring.

-- name: get
SELECT organization, integration, status, access_token, refresh_token, key_id, expires_at_us,
       last_refreshed_us, last_attempt_us, error_message, connected_by, connected_at_us, scopes
  FROM organization_integration
 WHERE organization = $1 AND integration = $2;

-- name: list
SELECT organization, integration, status, access_token, refresh_token, key_id, expires_at_us,
       last_refreshed_us, last_attempt_us, error_message, connected_by, connected_at_us, scopes
  FROM organization_integration
 WHERE organization = $1
 ORDER BY integration;

-- name: save_connected
INSERT INTO organization_integration (organization, integration, status, access_token, refresh_token,
       key_id, expires_at_us, last_refreshed_us, last_attempt_us, error_message, connected_by, connected_at_us,
       scopes, refresh_lease_us, refresh_lease_by, modified_us)
VALUES ($1, $2, 'Connected', $3, $4, $5, $6, $7, $7, NULL, $8, $7, $9, NULL, NULL, $7)
ON CONFLICT (organization, integration) DO UPDATE SET status = 'Connected',
       access_token = excluded.access_token, refresh_token = excluded.refresh_token, key_id = excluded.key_id,
       expires_at_us = excluded.expires_at_us, last_refreshed_us = excluded.last_refreshed_us,
       last_attempt_us = excluded.last_attempt_us, error_message = NULL, connected_by = excluded.connected_by,
       connected_at_us = excluded.connected_at_us, scopes = excluded.scopes, refresh_lease_us = NULL,
       refresh_lease_by = NULL, modified_us = excluded.modified_us;

-- name: save_disconnected
UPDATE organization_integration
   SET status = 'Disconnected', access_token = NULL, refresh_token = NULL, key_id = NULL, expires_at_us = NULL,
       error_message = NULL, refresh_lease_us = NULL, refresh_lease_by = NULL, modified_us = $1
 WHERE organization = $2 AND integration = $3;
