-- Service API keys (secrets stored as SHA-256 digests).

-- name: insert
INSERT INTO api_key (api_key, secret_sha256, organization, description, created_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: revoke
UPDATE api_key SET revoked_at = $1 WHERE api_key = $2 AND revoked_at IS NULL;

-- name: list
SELECT api_key, organization, description, created_at, created_by, revoked_at
  FROM api_key
 ORDER BY created_at;

-- A key with the status of the organization it is scoped to.
-- name: select
SELECT k.secret_sha256, k.organization, k.revoked_at, o.status AS org_status
  FROM api_key k
  LEFT JOIN organization o ON o.name = k.organization
 WHERE k.api_key = $1;
