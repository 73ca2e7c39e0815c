-- Sync document names are unique per organization: (organization, doctype, name) keys the
-- current documents and their version history, so one organization's names neither collide with
-- nor reveal another's. Both backends run this file: primary keys change by rebuilding the tables
-- (SQLite cannot alter a primary key), and the new keys have names of their own because the old
-- tables' key names are taken until those tables are dropped.

CREATE TABLE sync_document_0008 (
    organization TEXT NOT NULL,
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL DEFAULT 0,
    deleted      BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL,
    change_seq   BIGINT NOT NULL,
    creation     TEXT NOT NULL,
    modified     TEXT NOT NULL,
    owner        TEXT NOT NULL,
    modified_by  TEXT NOT NULL,
    CONSTRAINT sync_document_key PRIMARY KEY (organization, doctype, name)
);
INSERT INTO sync_document_0008 (organization, doctype, name, data, docstatus, deleted, version, change_seq,
                                creation, modified, owner, modified_by)
SELECT organization, doctype, name, data, docstatus, deleted, version, change_seq,
       creation, modified, owner, modified_by
FROM sync_document;
DROP TABLE sync_document;
ALTER TABLE sync_document_0008 RENAME TO sync_document;

CREATE TABLE sync_version_0008 (
    organization TEXT NOT NULL,
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    operation    TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL,
    deleted      BIGINT NOT NULL,
    modified     TEXT NOT NULL,
    modified_by  TEXT NOT NULL,
    op_id        TEXT,
    note         TEXT,
    CONSTRAINT sync_version_key PRIMARY KEY (organization, doctype, name, version)
);
INSERT INTO sync_version_0008 (organization, doctype, name, version, operation, data, docstatus, deleted,
                               modified, modified_by, op_id, note)
SELECT organization, doctype, name, version, operation, data, docstatus, deleted,
       modified, modified_by, op_id, note
FROM sync_version;
DROP TABLE sync_version;
ALTER TABLE sync_version_0008 RENAME TO sync_version;

-- Conflicts are found per document of one organization.
DROP INDEX sync_conflict_by_document;
CREATE INDEX sync_conflict_by_document ON sync_conflict (organization, doctype, docname, status);
