-- Organization Integration refreshes: the proactive refresh's work list, the cross-process
-- refresh lease, and the lease holder's outcome (which also gives the lease back).

-- name: due_for_refresh
SELECT organization, integration
  FROM organization_integration
 WHERE (status = 'Connected' AND expires_at_us < $1) OR status = 'Error'
 ORDER BY expires_at_us;

-- name: take_lease
UPDATE organization_integration
   SET refresh_lease_us = $1, refresh_lease_by = $2
 WHERE organization = $3 AND integration = $4 AND (refresh_lease_us IS NULL OR refresh_lease_us < $5);

-- name: release_lease
UPDATE organization_integration
   SET refresh_lease_us = NULL, refresh_lease_by = NULL
 WHERE organization = $1 AND integration = $2 AND refresh_lease_by = $3;

-- name: save_refreshed
UPDATE organization_integration
   SET status = 'Connected', access_token = $1, refresh_token = $2, key_id = $3, expires_at_us = $4,
       last_refreshed_us = $5, last_attempt_us = $5, error_message = NULL, scopes = COALESCE($6, scopes),
       refresh_lease_us = NULL, refresh_lease_by = NULL, modified_us = $5
 WHERE organization = $7 AND integration = $8 AND refresh_lease_by = $9;

-- name: save_refresh_failed
UPDATE organization_integration
   SET status = $1, error_message = $2, last_attempt_us = $3, refresh_lease_us = NULL, refresh_lease_by = NULL,
       modified_us = $3
 WHERE organization = $4 AND integration = $5 AND refresh_lease_by = $6;
