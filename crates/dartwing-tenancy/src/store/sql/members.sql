-- Org Members (memberships and invitations).

-- name: insert
INSERT INTO org_member (name, person, organization, role, status, creation, modified, owner, modified_by,
                        invited_email, invited_person)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- name: select
SELECT name, person, organization, role, status, creation, modified, owner, modified_by, invited_email, invited_person
  FROM org_member
 WHERE name = $1;

-- name: update
UPDATE org_member
   SET role = $1, status = $2, modified = $3, modified_by = $4
 WHERE name = $5;

-- name: delete
DELETE FROM org_member WHERE name = $1;

-- name: organization
SELECT organization FROM org_member WHERE name = $1;

-- Organizations in which a Person has an Active membership.
-- name: active_organizations
SELECT organization FROM org_member WHERE person = $1 AND status = 'Active';

-- Emails of every member (any status) whose Person exists.
-- name: emails
SELECT p.primary_email
  FROM org_member m
  JOIN person p ON p.name = m.person
 WHERE m.organization = $1
 ORDER BY p.primary_email;

-- Emails of the Active Owners and Admins (recipients of organization alerts).
-- name: admins
SELECT p.primary_email
  FROM org_member m
  JOIN person p ON p.name = m.person
 WHERE m.organization = $1 AND m.role IN ('Owner', 'Admin') AND m.status = 'Active' AND p.status = 'Active'
 ORDER BY p.primary_email;

-- Active Owners of an organization other than one membership.
-- name: count
SELECT COUNT(*)
  FROM org_member
 WHERE organization = $1 AND role = 'Owner' AND status = 'Active' AND name <> $2;
