-- Read-only views for operator surfaces (dashboard page, status commands).

-- name: read_queue_stats
-- Depth and lag per queue and state as last persisted by the queue_stats branch.
SELECT queue, state::text AS state, count, lag_s, updated_at
  FROM awa.queue_stats
 ORDER BY queue, state;
