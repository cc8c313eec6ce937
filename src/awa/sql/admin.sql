-- Operator queries: inspection and manual transitions. None is on a hot path.

-- name: get_job
-- One job, live or finished, by id.
SELECT * FROM awa.all_jobs WHERE id = $1;

-- name: list_jobs
-- Jobs matching the filter (state $1, queue $2, kind $3, tag $4, finalized in [$5, $6);
-- NULL = any), ids below $7, newest first, at most $8. Run under force_custom_plans: each
-- "$n IS NULL OR ..." then folds away and what remains can use its index (ADR 032). The
-- tag test repeats "tags <> '{}'" so the partial GIN index over tagged rows qualifies; a
-- time range names the finished states so the (state, finalized_at) index qualifies, and
-- orders by "id + 0", which no index provides: the window's rows are read through that
-- index and sorted, instead of walking every newer row of the id index to reach an old
-- window (the planner cannot see that the id order and the finalized order correlate).
SELECT * FROM awa.all_jobs
 WHERE ($1::awa.job_state IS NULL OR state = $1)
   AND ($2::text IS NULL OR queue = $2)
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::text IS NULL OR (tags @> ARRAY[$4::text] AND tags <> '{}'))
   AND ($5::timestamptz IS NULL OR finalized_at >= $5)
   AND ($6::timestamptz IS NULL OR finalized_at < $6)
   AND ($5::timestamptz IS NULL AND $6::timestamptz IS NULL
        OR state IN ('completed', 'failed', 'cancelled'))
   AND ($7::bigint IS NULL OR id < $7)
 ORDER BY CASE WHEN $5::timestamptz IS NULL AND $6::timestamptz IS NULL THEN id ELSE id + 0 END
          DESC
 LIMIT $8;

-- name: force_custom_plans
-- Plan this transaction's statements for their actual parameters (a generic plan of an
-- optional filter cannot use the filter's index).
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: reclaim_unique_key
-- Re-take a retried job's unique key; no row when another job holds it now.
INSERT INTO awa.job_unique (unique_key, job_id) VALUES ($1, $2)
ON CONFLICT (unique_key) DO UPDATE SET job_id = EXCLUDED.job_id
 WHERE awa.job_unique.job_id = EXCLUDED.job_id
RETURNING job_id;

-- name: queue_counts
-- Depth and lag per queue and state, and whether the queue is paused. Lag: age of the
-- oldest available job. A paused queue with nothing available still shows, as 0
-- available, so a pause is visible before the queue's first job arrives.
-- Read from the maintained counts, never from the jobs: live ones (migration 18, ADR 039)
-- and the history's (migration 19, ADR 043), each the stored totals plus the deltas still
-- pending, read only (in one snapshot they add up to the exact count: a fold commits its
-- DELETE of deltas and its upsert of totals together). The lag is, per (queue, kind) with
-- available jobs and priority 1..4, one LIMIT 1 descent of jobs_claim_idx, as in
-- refresh_queue_stats. O(slots x queues x states + pending deltas), whatever the number of
-- jobs live or finished; the console polls this.
WITH live AS (
    SELECT queue, kind, state, sum(n)::bigint AS n
      FROM (SELECT queue, kind, state, n FROM awa.job_counts
            UNION ALL
            SELECT queue, kind, state, n FROM awa.job_count_deltas) c
     GROUP BY queue, kind, state HAVING sum(n) > 0
),
done AS (
    SELECT queue, state, sum(n)::bigint AS n
      FROM (SELECT queue, state, n FROM awa.history_counts
            UNION ALL
            SELECT queue, state, n FROM awa.history_count_deltas) c
     GROUP BY queue, state HAVING sum(n) > 0
),
oldest AS (
    SELECT l.queue, min(o.run_at) AS run_at
      FROM live l
     CROSS JOIN (VALUES (1::smallint), (2::smallint), (3::smallint), (4::smallint)) v (priority)
     CROSS JOIN LATERAL (
           SELECT j.run_at FROM awa.jobs j
            WHERE j.state = 'available' AND j.queue = l.queue AND j.kind = l.kind
              AND j.priority = v.priority
            ORDER BY j.run_at LIMIT 1) o
     WHERE l.state = 'available'
     GROUP BY l.queue
),
counts AS (
    SELECT l.queue, l.state::text AS state, sum(l.n)::bigint AS count,
           CASE WHEN l.state = 'available'
                THEN extract(epoch FROM coalesce($1::timestamptz, now()) - min(o.run_at)) END AS lag_s
      FROM live l LEFT JOIN oldest o ON o.queue = l.queue AND l.state = 'available'
     GROUP BY l.queue, l.state
    UNION ALL
    SELECT queue, state::text, n, NULL FROM done
    UNION ALL
    SELECT p.queue, 'available', 0, NULL FROM awa.queue_pauses p
     WHERE NOT EXISTS (SELECT 1 FROM live l WHERE l.state = 'available' AND l.queue = p.queue)
)
SELECT c.queue, c.state, c.count, c.lag_s,
       EXISTS (SELECT 1 FROM awa.queue_pauses p WHERE p.queue = c.queue) AS paused
  FROM counts c
 ORDER BY 1, 2;

-- name: state_counts_of
-- How many of the jobs with ids $1 are in each state, live or finished: the figures of one
-- producer's own jobs (``awa demo``), whatever else the database holds. An id not found
-- (never inserted, or a finished job whose history partition was rotated away) is not
-- counted.
SELECT state::text AS state, count(*) AS count
  FROM awa.all_jobs
 WHERE id = ANY ($1::bigint[])
 GROUP BY state;

-- name: unhandled_kinds
-- Available jobs whose kind no live runtime has a handler for (they wait, never lose an
-- attempt; this makes them visible).
SELECT j.queue, j.kind, count(*) AS count
  FROM awa.jobs j
 WHERE j.state = 'available'
   AND NOT EXISTS (SELECT 1 FROM awa.runtimes r
                    WHERE r.stopped_at IS NULL AND j.kind = ANY (r.kinds)
                      AND r.last_seen_at > coalesce($1::timestamptz, now()) - make_interval(secs => $2))
 GROUP BY j.queue, j.kind
 ORDER BY 3 DESC;

-- name: lock_live_job
-- Lock a live job's row for an operator action (no row when it is not live).
SELECT state FROM awa.jobs WHERE id = $1 FOR UPDATE;
-- name: job_unique_key
-- The unique key of live job $1 (NULL: none), for a retry that must retake it.
SELECT unique_key FROM awa.jobs WHERE id = $1;
-- name: find_jobs
-- Jobs in states $1 (NULL = any), of kind $2 and queue $3 (NULL = any), whose args contain
-- $4 (jsonb @>, as text; NULL = any), oldest first. jsonb columns come back as text: this
-- runs on a caller's own connection (awa.testing), which may have no awa codecs.
SELECT id, kind, queue, args::text AS args, state, priority, attempt, max_attempts, run_at,
       created_at, attempted_at, finalized_at, heartbeat_at, deadline_at, timeout_s, tags,
       metadata::text AS metadata, errors::text AS errors, progress::text AS progress,
       result::text AS result, unique_key, run_lease, claimed_by
  FROM awa.all_jobs
 WHERE ($1::text[] IS NULL OR state::text = ANY ($1::text[]))
   AND ($2::text IS NULL OR kind = $2)
   AND ($3::text IS NULL OR queue = $3)
   AND ($4::text IS NULL OR args @> $4::text::jsonb)
 ORDER BY id;
