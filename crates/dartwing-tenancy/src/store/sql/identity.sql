-- Identity: the Person of a signed-in user with its memberships, and its identity-provider binding.

-- One row per membership of the Person with an email (one row with no organization when it has none).
-- name: principal
SELECT p.name AS person, p.status AS person_status, p.identity_issuer, p.identity_subject,
       m.organization, m.role, m.status, o.status AS org_status
  FROM person p
  LEFT JOIN org_member m ON m.person = p.name
  LEFT JOIN organization o ON o.name = m.organization
 WHERE p.primary_email = $1;

-- name: bind
UPDATE person
   SET identity_issuer = $1, identity_subject = $2
 WHERE name = $3 AND identity_subject IS NULL;

-- name: binding
SELECT identity_issuer, identity_subject FROM person WHERE name = $1;
