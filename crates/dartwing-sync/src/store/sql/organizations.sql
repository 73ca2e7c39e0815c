-- What sync keeps for an organization, deleted after the organization is.

-- name: delete_documents
DELETE FROM sync_document WHERE organization = $1;

-- name: delete_versions
DELETE FROM sync_version WHERE organization = $1;

-- name: delete_changes
DELETE FROM sync_change WHERE organization = $1;

-- name: delete_op_answers
DELETE FROM sync_op WHERE organization = $1;

-- name: delete_conflicts
DELETE FROM sync_conflict WHERE organization = $1;

-- name: delete_cursor
DELETE FROM sync_cursor WHERE organization = $1;
