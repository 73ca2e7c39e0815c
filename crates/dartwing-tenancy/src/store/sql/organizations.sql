-- Organizations.

-- name: insert
INSERT INTO organization (name, org_name, org_type, status, creation, modified, owner, modified_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: select
SELECT name, org_name, org_type, status, creation, modified, owner, modified_by
  FROM organization
 WHERE name = $1;

-- name: update
UPDATE organization
   SET org_name = $1, status = $2, modified = $3, modified_by = $4
 WHERE name = $5;

-- name: delete
DELETE FROM organization WHERE name = $1;

-- name: exists
SELECT name FROM organization WHERE name = $1;

-- name: status
SELECT status FROM organization WHERE name = $1;

-- name: summary
SELECT name, org_name, status FROM organization WHERE name = $1;

-- name: suspended
SELECT name FROM organization WHERE status = 'Suspended' ORDER BY name;
