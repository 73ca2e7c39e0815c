-- Offline sync (SPEC §7): current documents, their version history, the append-only change log
-- that the feed reads, stored answers of queued writes (op_id idempotency) and manual conflicts.
-- Timestamps are ISO 8601 UTC text with microseconds; JSON is stored as text.

-- Per-organization change counter. A writer locks its organization's row (upsert … RETURNING)
-- before appending to the change log and holds the lock until commit, so change-log rows of one
-- organization commit in `seq` order and the feed's watermark never skips a late commit.
-- `pruned_seq`: changes up to this seq may have been compacted away by the retention job.
CREATE TABLE sync_cursor (
    organization TEXT PRIMARY KEY REFERENCES organization (name),
    seq          BIGINT NOT NULL,
    pruned_seq   BIGINT NOT NULL DEFAULT 0
);

-- The current version of each document; `change_seq` is its latest change-log row. The
-- organization is checked once per batch (the `sync_cursor` row references it).
CREATE TABLE sync_document (
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    organization TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL DEFAULT 0,
    deleted      BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL,
    change_seq   BIGINT NOT NULL,
    creation     TEXT NOT NULL,
    modified     TEXT NOT NULL,
    owner        TEXT NOT NULL,
    modified_by  TEXT NOT NULL,
    PRIMARY KEY (doctype, name)
);

-- Every version of every document, kept after the change log is compacted.
CREATE TABLE sync_version (
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    organization TEXT NOT NULL,
    operation    TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL,
    deleted      BIGINT NOT NULL,
    modified     TEXT NOT NULL,
    modified_by  TEXT NOT NULL,
    op_id        TEXT,
    note         TEXT,
    PRIMARY KEY (doctype, name, version)
);

-- The change log: one row per applied change, in the feed-row shape.
CREATE TABLE sync_change (
    organization TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    doctype      TEXT NOT NULL,
    name         TEXT NOT NULL,
    operation    TEXT NOT NULL,
    data         TEXT NOT NULL,
    docstatus    BIGINT NOT NULL,
    deleted      BIGINT NOT NULL,
    modified     TEXT NOT NULL,
    PRIMARY KEY (organization, seq)
);
CREATE INDEX sync_change_by_doctype ON sync_change (organization, doctype, seq);

-- The answer given to each queued write, so a replayed op_id gets the same answer.
CREATE TABLE sync_op (
    organization TEXT NOT NULL,
    op_id        TEXT NOT NULL,
    answer       TEXT NOT NULL,
    applied_at   TEXT NOT NULL,
    PRIMARY KEY (organization, op_id)
);

CREATE TABLE sync_conflict (
    name           TEXT PRIMARY KEY,
    organization   TEXT NOT NULL,
    doctype        TEXT NOT NULL,
    docname        TEXT NOT NULL,
    op_id          TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('Open', 'Resolved')),
    server_doc     TEXT NOT NULL,
    client_doc     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    resolved_at    TEXT,
    resolved_by    TEXT,
    resolved_op_id TEXT
);
CREATE INDEX sync_conflict_by_organization ON sync_conflict (organization, status, created_at);
CREATE INDEX sync_conflict_by_document ON sync_conflict (doctype, docname, status);
