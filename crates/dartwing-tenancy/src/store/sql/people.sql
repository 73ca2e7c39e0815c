-- People.

-- name: insert
INSERT INTO person (name, primary_email, full_name, status, creation, modified, owner, modified_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: select
SELECT name, primary_email, full_name, status, creation, modified, owner, modified_by
  FROM person
 WHERE name = $1;

-- name: select_by_email
SELECT name, primary_email, full_name, status, creation, modified, owner, modified_by
  FROM person
 WHERE primary_email = $1;

-- name: email
SELECT primary_email FROM person WHERE name = $1;

-- name: update
UPDATE person
   SET primary_email = $1, full_name = $2, status = $3, modified = $4, modified_by = $5
 WHERE name = $6;

-- name: delete
DELETE FROM person WHERE name = $1;

-- The Person with an email and the organizations it is an Active member of (one query whether or
-- not the Person exists, so that its timing tells nothing).
-- name: active_memberships_by_email
SELECT p.name AS person, m.organization
  FROM person p
  JOIN org_member m ON m.person = p.name
 WHERE p.primary_email = $1 AND m.status = 'Active';
