-- The change feed: an organization's change-log rows after a watermark, in `seq` order, each as the
-- feed row serialized when the change was written. Rows written before the log kept `feed_row`
-- (migration 15) have none: their columns come along (only for them) to build it.

-- name: feed
SELECT seq, feed_row,
       CASE WHEN feed_row IS NULL THEN doctype END AS doctype,
       CASE WHEN feed_row IS NULL THEN name END AS name,
       CASE WHEN feed_row IS NULL THEN modified END AS modified,
       CASE WHEN feed_row IS NULL THEN docstatus END AS docstatus,
       CASE WHEN feed_row IS NULL THEN data END AS data,
       CASE WHEN feed_row IS NULL THEN deleted END AS deleted
  FROM sync_change
 WHERE organization = $1 AND seq > $2
 ORDER BY seq
 LIMIT $3;

-- name: feed_of_doctype
SELECT seq, feed_row,
       CASE WHEN feed_row IS NULL THEN doctype END AS doctype,
       CASE WHEN feed_row IS NULL THEN name END AS name,
       CASE WHEN feed_row IS NULL THEN modified END AS modified,
       CASE WHEN feed_row IS NULL THEN docstatus END AS docstatus,
       CASE WHEN feed_row IS NULL THEN data END AS data,
       CASE WHEN feed_row IS NULL THEN deleted END AS deleted
  FROM sync_change
 WHERE organization = $1 AND seq > $2 AND doctype = $3
 ORDER BY seq
 LIMIT $4;

-- name: start_after_time
-- Where a feed that starts from time $2 (µs) begins in organization $1's change log: the first
-- change written after it, and the time of the oldest change kept (NULLs when there is none).
SELECT (SELECT MIN(seq) FROM sync_change WHERE organization = $1 AND modified > $2) AS first_after,
       (SELECT MIN(modified) FROM sync_change WHERE organization = $1) AS oldest;
