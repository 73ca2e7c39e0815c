-- Samples of the integration token gauges.

-- name: count_by_status
SELECT integration, status, COUNT(*) AS tokens
  FROM organization_integration
 GROUP BY integration, status;

-- name: connected_expiries
SELECT integration, organization, expires_at_us
  FROM organization_integration
 WHERE status = 'Connected' AND expires_at_us IS NOT NULL;
