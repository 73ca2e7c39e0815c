-- Webhooks: each organization's signing secret and the hosts its deliveries may go to.

-- name: create_secret
INSERT INTO webhook_signing_secret (organization, secret, created_at_us) VALUES ($1, $2, $3)
ON CONFLICT (organization) DO NOTHING;

-- name: secret
SELECT secret, created_at_us FROM webhook_signing_secret WHERE organization = $1;

-- name: rotate_secret
INSERT INTO webhook_signing_secret (organization, secret, created_at_us) VALUES ($1, $2, $3)
ON CONFLICT (organization) DO UPDATE SET secret = excluded.secret, created_at_us = excluded.created_at_us;

-- name: allowed_hosts
SELECT pattern FROM webhook_allowed_host WHERE organization = $1 ORDER BY pattern;

-- name: clear_allowed_hosts
DELETE FROM webhook_allowed_host WHERE organization = $1;

-- name: allow_host
INSERT INTO webhook_allowed_host (organization, pattern) VALUES ($1, $2);

-- name: delete_organization_secret
DELETE FROM webhook_signing_secret WHERE organization = $1;

-- name: delete_organization_hosts
DELETE FROM webhook_allowed_host WHERE organization = $1;
