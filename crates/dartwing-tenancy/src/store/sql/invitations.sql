-- Invitations: open Org Members of status Invited, and their acceptance.

-- Open invitations addressed to an email ($1) or a Person ($2), oldest first, at most $3.
-- name: invitations
SELECT name, person, organization, role, status, creation, modified, owner, modified_by, invited_email, invited_person
  FROM org_member
 WHERE status = 'Invited' AND (invited_email = $1 OR invited_person = $2)
 ORDER BY creation, name
 LIMIT $3;

-- The same, to one organization ($4).
-- name: invitations_to_organization
SELECT name, person, organization, role, status, creation, modified, owner, modified_by, invited_email, invited_person
  FROM org_member
 WHERE status = 'Invited' AND (invited_email = $1 OR invited_person = $2) AND organization = $4
 ORDER BY creation, name
 LIMIT $3;

-- The same, with one name ($4).
-- name: invitation_named
SELECT name, person, organization, role, status, creation, modified, owner, modified_by, invited_email, invited_person
  FROM org_member
 WHERE status = 'Invited' AND (invited_email = $1 OR invited_person = $2) AND name = $4
 ORDER BY creation, name
 LIMIT $3;

-- name: membership
SELECT name FROM org_member WHERE person = $1 AND organization = $2;

-- name: accept
UPDATE org_member
   SET person = $1, status = 'Active', invited_email = NULL, invited_person = NULL, modified = $2, modified_by = $3
 WHERE name = $4 AND status = 'Invited';

-- Other invitations of the same person to the same organization, consumed by an acceptance.
-- name: consume_others
DELETE FROM org_member
 WHERE organization = $1 AND status = 'Invited' AND (invited_email = $2 OR invited_person = $3);
