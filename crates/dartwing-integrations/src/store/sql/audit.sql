-- The audit log of token operations (never token material).

-- name: insert
INSERT INTO integration_audit (id, organization, integration, action, actor, detail, at_us)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: newest_of_organization
SELECT organization, integration, action, actor, detail, at_us
  FROM integration_audit
 WHERE organization = $1
 ORDER BY at_us DESC, id DESC
 LIMIT $2;
