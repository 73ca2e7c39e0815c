-- Pending connect flows, stored under the hash of their single-use `state`.

-- name: delete_expired
DELETE FROM integration_connect_state WHERE expires_at_us < $1;

-- name: insert
INSERT INTO integration_connect_state (state_hash, organization, integration, requested_by, pkce_verifier,
       expires_at_us)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: take
DELETE FROM integration_connect_state
 WHERE state_hash = $1
RETURNING organization, integration, requested_by, pkce_verifier, expires_at_us;
