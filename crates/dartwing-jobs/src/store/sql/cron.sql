-- Jobs: cron ticks, recorded once per (schedule, tick) across nodes.

-- name: claim_tick
INSERT INTO cron_tick (name, tick_us) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: prune_ticks
DELETE FROM cron_tick WHERE tick_us < $1;
