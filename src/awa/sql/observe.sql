-- Read-only views for operator surfaces (dashboard page, status commands).

-- name: read_queue_stats
-- Depth and lag per queue and state as last persisted by the queue_stats branch.
SELECT queue, state::text AS state, count, lag_s, updated_at
  FROM awa.queue_stats
 ORDER BY queue, state;

-- name: read_queue_throughput
-- Jobs finished per queue and terminal state in the queue_stats branch's last window, with
-- the window's length and end (migration 17).
SELECT queue, state::text AS state, finished, extract(epoch FROM until - since) AS window_s,
       until AS updated_at
  FROM awa.queue_throughput
 ORDER BY queue, state;

-- name: publish_declarations
-- Upsert the queues and kinds one application declares ($1: jsonb array of
-- {type, name, description, queue}); a later publisher's description wins.
INSERT INTO awa.declarations AS d (type, name, description, queue, declared_by, first_seen,
                                   last_seen)
SELECT x.type, x.name, x.description, x.queue, $2, coalesce($3::timestamptz, now()),
       coalesce($3::timestamptz, now())
  FROM jsonb_to_recordset($1::jsonb) AS x(type text, name text, description text, queue text)
ON CONFLICT (type, name) DO UPDATE
   SET description = coalesce(EXCLUDED.description, d.description), queue = EXCLUDED.queue,
       declared_by = EXCLUDED.declared_by, last_seen = EXCLUDED.last_seen;

-- name: read_declarations
-- Declared queues then kinds, by name.
SELECT type, name, description, queue, declared_by, first_seen, last_seen
  FROM awa.declarations
 ORDER BY type DESC, name;

-- name: database_now
-- The database clock, against which the age of persisted health and stats is measured
-- (the console's clock may differ from the leader's; both wrote with the database's).
SELECT now() AS now;
