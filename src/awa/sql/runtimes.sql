-- Runtime liveness rows.

-- name: register_runtime
-- Publish (or refresh) this process's liveness row.
INSERT INTO awa.runtimes (instance_id, hostname, pid, role, queues, kinds, started_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, coalesce($7::timestamptz, now()), coalesce($7::timestamptz, now()))
ON CONFLICT (instance_id) DO UPDATE
   SET last_seen_at = EXCLUDED.last_seen_at, queues = EXCLUDED.queues, kinds = EXCLUDED.kinds,
       stopped_at = NULL;

-- name: touch_runtime
-- Refresh this process's last_seen_at.
UPDATE awa.runtimes SET last_seen_at = coalesce($2::timestamptz, now()) WHERE instance_id = $1;

-- name: stop_runtime
-- Mark this process's liveness row stopped (clean shutdown).
UPDATE awa.runtimes SET stopped_at = coalesce($2::timestamptz, now()), last_seen_at = coalesce($2::timestamptz, now())
 WHERE instance_id = $1;

-- name: list_runtimes
-- Every known runtime, most recently seen first.
SELECT * FROM awa.runtimes ORDER BY last_seen_at DESC;
