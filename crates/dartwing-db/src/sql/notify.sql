-- name: notify
-- Sends a payload to every session listening on a channel (PostgreSQL only).
SELECT pg_notify($1, $2)
