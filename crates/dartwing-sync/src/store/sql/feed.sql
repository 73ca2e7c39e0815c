-- The change feed: an organization's change-log rows after a watermark, in `seq` order.

-- name: feed
SELECT seq, doctype, name, modified, docstatus, data, deleted
  FROM sync_change
 WHERE organization = $1 AND seq > $2
 ORDER BY seq
 LIMIT $3;

-- name: feed_of_doctype
SELECT seq, doctype, name, modified, docstatus, data, deleted
  FROM sync_change
 WHERE organization = $1 AND seq > $2 AND doctype = $3
 ORDER BY seq
 LIMIT $4;
