-- Naming series: the counters behind generated names, and whether a generated name is taken.

-- name: next
INSERT INTO naming_series (prefix, current) VALUES ($1, 1)
ON CONFLICT (prefix) DO UPDATE SET current = naming_series.current + 1
RETURNING current;

-- name: organization_taken
SELECT COUNT(*) FROM organization WHERE name = $1;

-- name: person_taken
SELECT COUNT(*) FROM person WHERE name = $1;

-- name: member_taken
SELECT COUNT(*) FROM org_member WHERE name = $1;
