-- Sync keeps no foreign key into tenancy's tables: when an organization is deleted, sync deletes
-- the rows it keeps for it (on `AccessChange::OrganizationDeleted`). SQLite drops a foreign key by
-- rebuilding the table.
CREATE TABLE sync_cursor_0012 (
    organization TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL,
    pruned_seq   BIGINT NOT NULL DEFAULT 0
);
INSERT INTO sync_cursor_0012 (organization, seq, pruned_seq)
SELECT organization, seq, pruned_seq
FROM sync_cursor;
DROP TABLE sync_cursor;
ALTER TABLE sync_cursor_0012 RENAME TO sync_cursor;
