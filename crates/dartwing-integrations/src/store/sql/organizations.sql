-- Deleting what the vault keeps for a deleted organization (the audit log is kept).

-- name: delete_integrations
DELETE FROM organization_integration WHERE organization = $1;

-- name: delete_connect_states
DELETE FROM integration_connect_state WHERE organization = $1;
