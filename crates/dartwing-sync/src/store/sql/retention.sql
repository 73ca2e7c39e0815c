-- Change-log retention: change-log rows older than the cutoff that a later change of the same
-- document supersedes are removed; each organization's `pruned_seq` rises to the last one removed.

-- name: superseded_per_organization
SELECT organization, MAX(seq) AS last_seq
  FROM sync_change
 WHERE sync_change.modified < $1
   AND sync_change.seq < (SELECT d.change_seq FROM sync_document d
                           WHERE d.organization = sync_change.organization
                             AND d.doctype = sync_change.doctype AND d.name = sync_change.name)
 GROUP BY organization;

-- name: raise_pruned_seq
UPDATE sync_cursor SET pruned_seq = $2 WHERE organization = $1 AND pruned_seq < $2;

-- name: delete_superseded
DELETE FROM sync_change
 WHERE sync_change.modified < $1
   AND sync_change.seq < (SELECT d.change_seq FROM sync_document d
                           WHERE d.organization = sync_change.organization
                             AND d.doctype = sync_change.doctype AND d.name = sync_change.name);
