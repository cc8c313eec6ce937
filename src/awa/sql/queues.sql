-- Operator pauses of whole queues (awa.queue_pauses, ADR 024). The claim statement reads the
-- table itself (claim_batch in jobs.sql); these are the operator's writes and reads, none on
-- a hot path.

-- name: queue_pause
-- Pause queue $1 (by $2, NULL: the database role; reason $3) if it is known; an existing
-- pause is kept as it was (the no-op update only locks and returns it, so a concurrent
-- pause still sees the winner's row). A queue is known when it is paused already, a runtime
-- serves or served it, an application declared it, it has available jobs (claim index), or
-- the leader's last queue_stats saw live jobs in it. No row when unknown; else the stored
-- pause and whether this call created it.
WITH t AS (SELECT coalesce($4::timestamptz, now()) AS now),
known AS (
    SELECT EXISTS (SELECT 1 FROM awa.queue_pauses WHERE queue = $1)
        OR EXISTS (SELECT 1 FROM awa.runtimes WHERE queues ? $1)
        OR EXISTS (SELECT 1 FROM awa.declarations WHERE type = 'queue' AND name = $1)
        OR EXISTS (SELECT 1 FROM awa.jobs WHERE state = 'available' AND queue = $1)
        OR EXISTS (SELECT 1 FROM awa.queue_stats WHERE queue = $1) AS ok
)
INSERT INTO awa.queue_pauses AS q (queue, paused_at, paused_by, reason)
SELECT $1, t.now, coalesce($2::text, current_user::text), $3::text
  FROM t, known
 WHERE known.ok
ON CONFLICT (queue) DO UPDATE SET queue = q.queue
RETURNING q.queue, q.paused_at, q.paused_by, q.reason, (q.xmax::text = '0') AS created;

-- name: queue_resume
-- Resume queue $1: delete its pause and, in the same statement, wake its dispatchers with
-- the awa_jobs notification inserts use (delivered at commit), so claims restart at once
-- instead of at the next poll. No row when it was not paused (then nobody is woken).
WITH gone AS (
    DELETE FROM awa.queue_pauses WHERE queue = $1 RETURNING queue
)
SELECT g.queue, pg_notify('awa_jobs', g.queue) IS NOT NULL AS woken FROM gone g;

-- name: queue_pauses
-- Every paused queue with who paused it, when and why, by name.
SELECT queue, paused_at, paused_by, reason FROM awa.queue_pauses ORDER BY queue;
