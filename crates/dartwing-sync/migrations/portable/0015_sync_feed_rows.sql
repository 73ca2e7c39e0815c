-- The change log keeps each change's feed row as JSON text, serialized once when the change is
-- written, so the feed serves it without building it again. Rows written before this migration
-- have none (NULL); the feed builds theirs from the other columns.
ALTER TABLE sync_change ADD COLUMN feed_row TEXT;
