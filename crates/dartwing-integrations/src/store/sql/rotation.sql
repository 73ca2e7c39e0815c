-- Key rotation: rows whose tokens are not under the current key, read in key order, and the
-- compare-and-swap that replaces a row's ciphertexts only while they are still the ones read.

-- name: batch_not_under_key
SELECT organization, integration, status, access_token, refresh_token, key_id, expires_at_us,
       last_refreshed_us, last_attempt_us, error_message, connected_by, connected_at_us, scopes
  FROM organization_integration
 WHERE key_id IS NOT NULL AND key_id <> $1
   AND (organization > $2 OR (organization = $2 AND integration > $3))
 ORDER BY organization, integration
 LIMIT $4;

-- name: count_not_under_key
SELECT COUNT(*) FROM organization_integration WHERE key_id IS NOT NULL AND key_id <> $1;

-- name: replace_ciphertexts
UPDATE organization_integration
   SET access_token = $1, refresh_token = $2, key_id = $3
 WHERE organization = $4 AND integration = $5 AND key_id = $6
   AND COALESCE(access_token, '') = $7 AND COALESCE(refresh_token, '') = $8;
