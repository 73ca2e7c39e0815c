-- Per-organization change counters: `seq` of the latest change, `pruned_seq` up to which the
-- retention job may have compacted the change log.

-- name: lock
INSERT INTO sync_cursor (organization, seq, pruned_seq)
VALUES ($1, 0, 0)
ON CONFLICT (organization) DO UPDATE SET seq = sync_cursor.seq
RETURNING seq;

-- name: advance
UPDATE sync_cursor SET seq = $2 WHERE organization = $1;

-- name: read
SELECT seq, pruned_seq FROM sync_cursor WHERE organization = $1;
