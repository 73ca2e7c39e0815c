-- Sync keeps no foreign key into tenancy's tables: when an organization is deleted, sync deletes
-- the rows it keeps for it (on `AccessChange::OrganizationDeleted`). Its timestamps become BIGINT
-- microseconds since the Unix epoch, as in every other table (they were ISO 8601 UTC text with
-- microseconds, `2026-11-25T10:00:00.123456Z`). SQLite changes a column's type and drops a foreign
-- key by rebuilding the table.
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

CREATE TABLE sync_document_0012 (
    organization TEXT NOT NULL,
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL DEFAULT 0,
    deleted      BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL,
    change_seq   BIGINT NOT NULL,
    creation     BIGINT NOT NULL,
    modified     BIGINT NOT NULL,
    owner        TEXT NOT NULL,
    modified_by  TEXT NOT NULL,
    PRIMARY KEY (organization, doctype, name)
);
INSERT INTO sync_document_0012 (organization, doctype, name, data, docstatus, deleted, version, change_seq,
                                creation, modified, owner, modified_by)
SELECT organization, doctype, name, data, docstatus, deleted, version, change_seq,
       CAST(strftime('%s', substr(creation, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(creation, 21, 6) AS INTEGER),
       CAST(strftime('%s', substr(modified, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(modified, 21, 6) AS INTEGER),
       owner, modified_by
FROM sync_document;
DROP TABLE sync_document;
ALTER TABLE sync_document_0012 RENAME TO sync_document;

CREATE TABLE sync_version_0012 (
    organization TEXT NOT NULL,
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    operation    TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL,
    deleted      BIGINT NOT NULL,
    modified     BIGINT NOT NULL,
    modified_by  TEXT NOT NULL,
    op_id        TEXT,
    note         TEXT,
    PRIMARY KEY (organization, doctype, name, version)
);
INSERT INTO sync_version_0012 (organization, doctype, name, version, operation, data, docstatus, deleted,
                               modified, modified_by, op_id, note)
SELECT organization, doctype, name, version, operation, data, docstatus, deleted,
       CAST(strftime('%s', substr(modified, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(modified, 21, 6) AS INTEGER),
       modified_by, op_id, note
FROM sync_version;
DROP TABLE sync_version;
ALTER TABLE sync_version_0012 RENAME TO sync_version;

CREATE TABLE sync_change_0012 (
    organization TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    operation    TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL,
    deleted      BIGINT NOT NULL,
    modified     BIGINT NOT NULL,
    PRIMARY KEY (organization, seq)
);
INSERT INTO sync_change_0012 (organization, seq, doctype, name, operation, data, docstatus, deleted, modified)
SELECT organization, seq, doctype, name, operation, data, docstatus, deleted,
       CAST(strftime('%s', substr(modified, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(modified, 21, 6) AS INTEGER)
FROM sync_change;
DROP TABLE sync_change;
ALTER TABLE sync_change_0012 RENAME TO sync_change;
CREATE INDEX sync_change_by_doctype ON sync_change (organization, doctype, seq);

CREATE TABLE sync_op_0012 (
    organization TEXT NOT NULL,
    op_id        TEXT NOT NULL,
    answer       TEXT NOT NULL,
    applied_at   BIGINT NOT NULL,
    PRIMARY KEY (organization, op_id)
);
INSERT INTO sync_op_0012 (organization, op_id, answer, applied_at)
SELECT organization, op_id, answer, CAST(strftime('%s', substr(applied_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(applied_at, 21, 6) AS INTEGER)
FROM sync_op;
DROP TABLE sync_op;
ALTER TABLE sync_op_0012 RENAME TO sync_op;

CREATE TABLE sync_conflict_0012 (
    name           TEXT PRIMARY KEY,
    organization   TEXT NOT NULL,
    doctype        TEXT NOT NULL,
    docname        TEXT NOT NULL,
    op_id          TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('Open', 'Resolved')),
    server_doc     TEXT NOT NULL,
    client_doc     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    resolved_at    BIGINT,
    resolved_by    TEXT,
    resolved_op_id TEXT
);
INSERT INTO sync_conflict_0012 (name, organization, doctype, docname, op_id, status, server_doc, client_doc,
                                created_at, created_by, resolved_at, resolved_by, resolved_op_id)
SELECT name, organization, doctype, docname, op_id, status, server_doc, client_doc,
       CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER),
       created_by,
       CAST(strftime('%s', substr(resolved_at, 1, 19)) AS INTEGER) * 1000000 + CAST(substr(resolved_at, 21, 6) AS INTEGER),
       resolved_by, resolved_op_id
FROM sync_conflict;
DROP TABLE sync_conflict;
ALTER TABLE sync_conflict_0012 RENAME TO sync_conflict;
CREATE INDEX sync_conflict_by_organization ON sync_conflict (organization, status, created_at);
CREATE INDEX sync_conflict_by_document ON sync_conflict (organization, doctype, docname, status);
