-- Maintenance branch queries. All bounded by a batch size; all guarded so that racing a
-- worker or another leader cannot corrupt a job (state + run_lease compare-and-set).

-- name: promote_due
-- One statement, one round trip (issue 16): make up to $1 due scheduled/retryable jobs
-- available, NOTIFY their queues (delivered at commit; identical payloads coalesce), and
-- say when the earliest job still deferred is due. Returns one row: the queue of each
-- promoted job, and next_in, the seconds from *this statement's end* (clock_timestamp,
-- not the transaction's start, which the caller's clock has long passed) until that job
-- is due, or NULL when nothing is deferred; with a pinned $2 (tests) it counts from $2.
-- The statement's snapshot still sees the promoted rows as deferred, hence NOT IN (due).
-- Fences itself (ADR 044): with a leadership term $3 it share-locks the term row while
-- that term is current, as `term_fence` does for a fenced transaction, before it locks
-- or writes any job; `current` is false (and nothing was touched) when a newer term
-- began. In a fenced transaction the same work took four round trips (BEGIN, fence,
-- statement, COMMIT) on the path of every scheduled job. $3 NULL: unfenced.
-- Commits asynchronously (ADR 020): a promotion lost in a server crash is redone by the
-- next run.
-- O(due jobs), whatever is scheduled later (issue 19): `due` compares run_at with the
-- expression itself, which bounds the scan of jobs_due_idx; compared with a column of a
-- CTE it became a join filter applied after the ordered scan, and every future job was
-- read on each run. The UPDATE finds the rows by primary key, = ANY of an array: joined
-- with `due`, the planner, not knowing how few rows it holds, hashes a Seq Scan of
-- awa.jobs. `t` is an InitPlan of `due`, so the fence is taken before any job is locked,
-- and the UPDATE reads it too, so its set_config runs even when nothing is due.
WITH fence AS (
    SELECT term FROM awa.leader_term WHERE term = $3::bigint FOR SHARE
),
t AS (
    SELECT set_config('synchronous_commit', 'off', true) AS relaxed
     WHERE $3::bigint IS NULL OR EXISTS (SELECT 1 FROM fence)
),
due AS (
    SELECT id FROM awa.jobs
     WHERE state IN ('scheduled', 'retryable') AND run_at <= coalesce($2::timestamptz, now())
       AND (SELECT relaxed FROM t) IS NOT NULL
     ORDER BY run_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
),
promoted AS (
    UPDATE awa.jobs j SET state = 'available'
     WHERE j.id = ANY (ARRAY(SELECT id FROM due))
       AND (SELECT relaxed FROM t) IS NOT NULL
    RETURNING j.queue
),
woken AS (
    SELECT pg_notify('awa_jobs', q.queue) FROM (SELECT DISTINCT queue FROM promoted) q
)
SELECT coalesce((SELECT array_agg(queue ORDER BY queue) FROM promoted), '{}') AS queues,
       (SELECT count(*) FROM woken) AS woken,
       (SELECT relaxed FROM t) IS NOT NULL AS current,
       -- epoch arithmetic, not timestamp subtraction: a foreign producer's 'infinity'
       -- run_at gives +/-Infinity here instead of an error that would roll back the run.
       (SELECT extract(epoch FROM min(run_at))
               - extract(epoch FROM coalesce($2::timestamptz, clock_timestamp()))
          FROM awa.jobs
         WHERE state IN ('scheduled', 'retryable')
           AND id NOT IN (SELECT id FROM due))::double precision AS next_in;

-- name: next_due_at
-- When the earliest scheduled/retryable job becomes due (NULL if none).
SELECT min(run_at) FROM awa.jobs WHERE state IN ('scheduled', 'retryable');

-- name: delete_expired_history
-- Delete up to $3 finished jobs in state $1 finalized more than $2 seconds ago (only used
-- for states kept for less than completed jobs, whose retention the ring follows: none by
-- default, ADR 035).
WITH victims AS (
    SELECT slot, id FROM awa.jobs_done
     WHERE state = $1::awa.job_state
       AND finalized_at < coalesce($4::timestamptz, now()) - make_interval(secs => $2)
     LIMIT $3
)
DELETE FROM awa.jobs_done d USING victims v WHERE d.slot = v.slot AND d.id = v.id;

-- name: gc_runtimes
-- Forget runtimes stopped more than $1 s ago or unseen for more than $2 s.
DELETE FROM awa.runtimes
 WHERE (stopped_at IS NOT NULL AND stopped_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1))
    OR last_seen_at < coalesce($3::timestamptz, now()) - make_interval(secs => $2);

-- name: gc_unique_keys
-- One page of the unique-key sweep: the $1 keys after $2 in key order (primary key), of which
-- those whose job no longer exists (history pruned by TRUNCATE) are released. Returns how
-- many were released, and the page's last key (NULL: the page was empty, the sweep is at
-- the end). O(page): the next run goes on from the last key instead of re-reading the table.
WITH page AS (
    SELECT unique_key, job_id FROM awa.job_unique
     WHERE unique_key > $2 ORDER BY unique_key LIMIT $1
), gone AS (
    DELETE FROM awa.job_unique u
     USING page p
     WHERE u.unique_key = p.unique_key AND u.job_id = p.job_id
       AND NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.id = p.job_id)
       AND NOT EXISTS (SELECT 1 FROM awa.jobs_done d WHERE d.id = p.job_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS released,
       (SELECT max(unique_key) FROM page) AS last_key,
       (SELECT count(*) FROM page) AS scanned;

-- name: age_priorities
-- Raise the priority (lower number) of up to $2 available jobs that waited more than $1 s
-- per step already gained. Index-served whatever the queue holds (ADR 035): `pairs` walks
-- the distinct (queue, kind) prefixes of jobs_claim_idx (a loose index scan, one descent
-- per pair), then each pair and priority 2..4 is one range of the index bounded by
-- `run_at < now - $1` (a job ages only after waiting one step at least); the per-step
-- bound filters on original_priority, which the index carries. Priority 1 is never read,
-- and no plan can fall back to a Seq Scan hoping to meet $2 candidates early. The UPDATE
-- finds the aged rows by primary key (= ANY of an array, not a join the planner could
-- turn into a Seq Scan for want of knowing how few rows `aged` has).
WITH RECURSIVE t AS (SELECT coalesce($3::timestamptz, now()) AS now),
pairs AS (
    (SELECT queue, kind FROM awa.jobs WHERE state = 'available'
      ORDER BY queue, kind LIMIT 1)
    UNION ALL
    SELECT n.queue, n.kind
      FROM pairs p
     CROSS JOIN LATERAL (
           SELECT j.queue, j.kind FROM awa.jobs j
            WHERE j.state = 'available' AND (j.queue, j.kind) > (p.queue, p.kind)
            ORDER BY j.queue, j.kind LIMIT 1) n
),
aged AS (
    SELECT a.id
      FROM pairs p, t, (VALUES (2::smallint), (3::smallint), (4::smallint)) AS v (priority)
     CROSS JOIN LATERAL (
           SELECT j.id FROM awa.jobs j
            WHERE j.state = 'available' AND j.queue = p.queue AND j.kind = p.kind
              AND j.priority = v.priority
              AND j.run_at < t.now - make_interval(secs => $1)
              AND j.run_at < t.now
                             - make_interval(secs => $1 * (j.original_priority - j.priority + 1))
            LIMIT $2
              FOR UPDATE SKIP LOCKED) a
     LIMIT $2
)
UPDATE awa.jobs j SET priority = j.priority - 1 WHERE j.id = ANY (ARRAY(SELECT id FROM aged));

-- name: refresh_admin_metadata
-- Upsert the queue/kind pairs seen in live jobs and runtime registrations; zero the rest.
-- A pair that is neither live nor handled any more keeps its row with handled_by = 0 and
-- live_jobs = 0 (it is not deleted): operators can still see that the kind existed, from
-- first_seen until last_seen (the last refresh that saw it), and the row comes back to life
-- with its original first_seen if the pair reappears. Rows are only written when a count
-- changes to zero, so idle pairs cost no writes. The row count reported is the pairs upserted
-- (live or handled now), not the ones zeroed.
-- Live jobs are read from the maintained counts (migration 18, ADR 039), never from
-- awa.jobs: the stored totals plus the deltas still pending, read only. In one snapshot the
-- two always add up to the exact count (a fold commits its DELETE of deltas and its upsert
-- of totals together), whether or not refresh_queue_stats, the only statement that folds,
-- runs at the same time. O(totals + deltas pending since the last fold).
WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now),
live AS (
    SELECT queue, kind, sum(n)::bigint AS n
      FROM (SELECT queue, kind, n FROM awa.job_counts
            UNION ALL
            SELECT queue, kind, n FROM awa.job_count_deltas) c
     GROUP BY queue, kind HAVING sum(n) > 0
),
handled AS (
    -- Live runtimes only: a process killed with SIGKILL never marks itself stopped, but it
    -- stops beating its row (every 10 s at most); a minute of silence is death.
    SELECT q.key AS queue, k AS kind, count(*) AS runtimes
      FROM t, awa.runtimes r, jsonb_each(r.queues) q, unnest(r.kinds) k
     WHERE r.stopped_at IS NULL AND r.last_seen_at >= t.now - interval '60 seconds'
     GROUP BY 1, 2
),
pairs AS (
    SELECT coalesce(l.queue, h.queue) AS queue, coalesce(l.kind, h.kind) AS kind,
           coalesce(h.runtimes, 0) AS handled_by, coalesce(l.n, 0) AS live_jobs
      FROM live l FULL JOIN handled h ON h.queue = l.queue AND h.kind = l.kind
),
forgotten AS (
    UPDATE awa.admin_metadata m SET handled_by = 0, live_jobs = 0
     WHERE (m.handled_by <> 0 OR m.live_jobs <> 0)
       AND NOT EXISTS (SELECT 1 FROM pairs p WHERE p.queue = m.queue AND p.kind = m.kind)
)
INSERT INTO awa.admin_metadata (queue, kind, handled_by, live_jobs, first_seen, last_seen)
SELECT p.queue, p.kind, p.handled_by, p.live_jobs, t.now, t.now FROM pairs p, t
ON CONFLICT (queue, kind) DO UPDATE
   SET handled_by = EXCLUDED.handled_by, live_jobs = EXCLUDED.live_jobs, last_seen = EXCLUDED.last_seen;

-- name: read_health
-- Persisted per-branch health, lane then branch.
SELECT * FROM awa.maintenance_health ORDER BY lane, branch;
-- name: refresh_queue_stats
-- Recompute depth and lag per queue and live state into awa.queue_stats. Depth comes from
-- the maintained counts (migration 18, ADR 039), never from awa.jobs: `folded` moves the
-- pending deltas into awa.job_counts (O(deltas since the last fold)), and a total is the
-- stored one, or the upsert's RETURNING for a key the fold touched. This is the only
-- statement that folds (refresh_admin_metadata reads totals plus pending deltas), and the
-- leader never runs a branch twice at once, so no two folds race: two would each read the
-- totals the other folded as of its own snapshot and publish them stale. Lag (age of the
-- oldest available job) is one descent of jobs_claim_idx per (queue, kind) with available
-- jobs and priority 1..4 (the index orders by priority before run_at, so each priority's
-- first entry is its oldest): O(pairs), not O(available jobs).
-- In the same statement (no extra transaction for an idle leader), `thr` counts the jobs
-- finished per queue and terminal state since the previous run (the newest `until` stored;
-- the first run looks back $2 seconds) into awa.queue_throughput, from the history's
-- (state, finalized_at) index: O(jobs finished in the window), each counted once. Every
-- stored row gets the new window; a queue that finished nothing in it reads 0 (migration 17).
-- `history_folded` folds the history's pending counts (migration 19) into awa.history_counts
-- (O(deltas since the last fold)); nothing here reads them (queue_counts in admin.sql does).
WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now),
w AS (
    SELECT coalesce((SELECT max(until) FROM awa.queue_throughput),
                    (SELECT now FROM t) - make_interval(secs => $2)) AS since,
           (SELECT now FROM t) AS until
),
finished AS (
    SELECT h.queue, h.state, count(*) AS finished
      FROM awa.jobs_done h, w
     WHERE h.state IN ('completed', 'failed', 'cancelled')
       AND h.finalized_at > w.since AND h.finalized_at <= w.until
     GROUP BY h.queue, h.state
),
thr AS (
    INSERT INTO awa.queue_throughput AS q (queue, state, finished, since, until)
    SELECT k.queue, k.state, coalesce(f.finished, 0), w.since, w.until
      FROM (SELECT queue, state FROM awa.queue_throughput
            UNION SELECT queue, state FROM finished) k
      LEFT JOIN finished f USING (queue, state)
     CROSS JOIN w
    ON CONFLICT (queue, state) DO UPDATE
       SET finished = EXCLUDED.finished, since = EXCLUDED.since, until = EXCLUDED.until
),
pending AS (
    DELETE FROM awa.job_count_deltas RETURNING queue, kind, state, n
),
folded AS (
    INSERT INTO awa.job_counts AS c (queue, kind, state, n)
    SELECT queue, kind, state, sum(n) FROM pending
     GROUP BY queue, kind, state HAVING sum(n) <> 0
     ORDER BY queue, kind, state  -- one lock order with any other writer of these rows
    ON CONFLICT (queue, kind, state) DO UPDATE SET n = c.n + EXCLUDED.n
    RETURNING queue, kind, state, n
),
history_pending AS (
    -- The history's counts (migration 19, ADR 043) fold here too, the same way: one
    -- statement folds both, so no second folder races this one.
    DELETE FROM awa.history_count_deltas RETURNING slot, queue, state, n
),
history_folded AS (
    INSERT INTO awa.history_counts AS c (slot, queue, state, n)
    SELECT slot, queue, state, sum(n) FROM history_pending
     GROUP BY slot, queue, state HAVING sum(n) <> 0
     ORDER BY slot, queue, state
    ON CONFLICT (slot, queue, state) DO UPDATE SET n = c.n + EXCLUDED.n
),
counts AS (
    SELECT queue, kind, state, n FROM folded
    UNION ALL
    SELECT c.queue, c.kind, c.state, c.n FROM awa.job_counts c
     WHERE NOT EXISTS (SELECT 1 FROM folded f
                        WHERE f.queue = c.queue AND f.kind = c.kind AND f.state = c.state)
),
oldest AS (
    -- Per queue, the earliest run_at of its available jobs: per pair and priority, the
    -- first entry of that range of jobs_claim_idx (LIMIT 1, an index-only descent).
    SELECT c.queue, min(o.run_at) AS run_at
      FROM counts c
     CROSS JOIN (VALUES (1::smallint), (2::smallint), (3::smallint), (4::smallint)) v (priority)
     CROSS JOIN LATERAL (
           SELECT j.run_at FROM awa.jobs j
            WHERE j.state = 'available' AND j.queue = c.queue AND j.kind = c.kind
              AND j.priority = v.priority
            ORDER BY j.run_at LIMIT 1) o
     WHERE c.state = 'available' AND c.n > 0
     GROUP BY c.queue
),
fresh AS (
    SELECT c.queue, c.state, sum(c.n)::bigint AS count,
           CASE WHEN c.state = 'available'
                THEN extract(epoch FROM (SELECT now FROM t) - min(o.run_at)) END AS lag_s
      FROM counts c LEFT JOIN oldest o ON o.queue = c.queue AND c.state = 'available'
     GROUP BY c.queue, c.state
    HAVING sum(c.n) > 0
), gone AS (
    DELETE FROM awa.queue_stats s
     WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.queue = s.queue AND f.state = s.state)
)
INSERT INTO awa.queue_stats (queue, state, count, lag_s, updated_at)
SELECT f.queue, f.state, f.count, f.lag_s, t.now FROM fresh f, t
ON CONFLICT (queue, state) DO UPDATE
   SET count = EXCLUDED.count, lag_s = EXCLUDED.lag_s, updated_at = EXCLUDED.updated_at
RETURNING queue, state::text AS state, count, lag_s;

