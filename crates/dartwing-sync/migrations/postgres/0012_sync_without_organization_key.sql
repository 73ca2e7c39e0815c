-- Sync keeps no foreign key into tenancy's tables: when an organization is deleted, sync deletes
-- the rows it keeps for it (on `AccessChange::OrganizationDeleted`). Its timestamps become BIGINT
-- microseconds since the Unix epoch, as in every other table (they were ISO 8601 UTC text with
-- microseconds, `2026-11-25T10:00:00.123456Z`).
ALTER TABLE sync_cursor DROP CONSTRAINT IF EXISTS sync_cursor_organization_fkey;

ALTER TABLE sync_document
    ALTER COLUMN creation TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', creation::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM creation::timestamptz)::bigint % 1000000,
    ALTER COLUMN modified TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', modified::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM modified::timestamptz)::bigint % 1000000;
ALTER TABLE sync_version
    ALTER COLUMN modified TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', modified::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM modified::timestamptz)::bigint % 1000000;
ALTER TABLE sync_change
    ALTER COLUMN modified TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', modified::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM modified::timestamptz)::bigint % 1000000;
ALTER TABLE sync_op
    ALTER COLUMN applied_at TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', applied_at::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM applied_at::timestamptz)::bigint % 1000000;
ALTER TABLE sync_conflict
    ALTER COLUMN created_at TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', created_at::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM created_at::timestamptz)::bigint % 1000000,
    ALTER COLUMN resolved_at TYPE BIGINT USING EXTRACT(EPOCH FROM date_trunc('second', resolved_at::timestamptz))::bigint * 1000000 + EXTRACT(MICROSECONDS FROM resolved_at::timestamptz)::bigint % 1000000;
