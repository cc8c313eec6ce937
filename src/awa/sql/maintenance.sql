-- Maintenance branch queries. All bounded by a batch size; all guarded so that racing a
-- worker or another leader cannot corrupt a job (state + run_lease compare-and-set).

-- name: promote_due
-- Make up to $1 due scheduled/retryable jobs available; returns their queues.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
due AS (
    SELECT id FROM awa.jobs, t
     WHERE state IN ('scheduled', 'retryable') AND run_at <= t.now
     ORDER BY run_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE awa.jobs j SET state = 'available'
  FROM due WHERE j.id = due.id
RETURNING j.queue;

-- name: next_due_at
-- When the earliest scheduled/retryable job becomes due (NULL if none).
SELECT min(run_at) FROM awa.jobs WHERE state IN ('scheduled', 'retryable');

-- name: next_due_in
-- Seconds until the earliest scheduled/retryable job becomes due by the database clock
-- ($1, default now()), NULL if none: the app clock may be skewed, and a wake-up computed
-- from it made promotion spin while the database still saw nothing due.
SELECT extract(epoch FROM min(run_at) - coalesce($1::timestamptz, now()))::double precision
  FROM awa.jobs WHERE state IN ('scheduled', 'retryable');

-- name: find_orphaned_running
-- Running attempts whose runtime's presence lock is gone (process or connection died),
-- claimed more than $1 seconds ago, and (unless $5 is NULL) whose runtime has not beaten
-- its liveness row for $5 seconds: a live runtime whose presence connection merely
-- half-opened keeps beating through its pool, and is not rescued. Presence locks are
-- advisory (key1 = $3, key2 = hashtext(instance_id)), visible in pg_locks as classid/objid
-- with objsubid 2.
SELECT j.id, j.run_lease FROM awa.jobs j
 WHERE j.state IN ('running')
   AND j.attempted_at < coalesce($4::timestamptz, now()) - make_interval(secs => $1)
   AND NOT EXISTS (
       SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = $3::bigint
          AND l.objid::bigint = (hashtext(j.claimed_by)::bigint & 4294967295))
   AND ($5::double precision IS NULL OR NOT EXISTS (
       SELECT 1 FROM awa.runtimes r
        WHERE r.instance_id = j.claimed_by AND r.stopped_at IS NULL
          AND r.last_seen_at >= coalesce($4::timestamptz, now()) - make_interval(secs => $5)))
 LIMIT $2;

-- name: find_expired_deadlines
-- Running attempts past their deadline by more than $1 seconds (their holder did not stop
-- them: it died or hung).
SELECT id, run_lease FROM awa.jobs
 WHERE state = 'running' AND deadline_at IS NOT NULL
   AND deadline_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
 ORDER BY deadline_at
 LIMIT $2;

-- name: find_expired_callbacks
-- Parked jobs whose callback timed out.
SELECT id, run_lease FROM awa.jobs
 WHERE state = 'waiting_external'
   AND callback_timeout_at < coalesce($2::timestamptz, now())
 ORDER BY callback_timeout_at
 LIMIT $1;

-- name: rescue_retry
-- Put rescued attempts (id/lease pairs, still in a state of $3, no cancel requested, the
-- reason re-checked: $7 heartbeat staleness, $8 holder silence, NULL skips) back in
-- line when attempts remain: available now when $5 = 0, else retryable after
-- $5 * 2^(attempt-1) s (capped at an hour, ±10 % jitter). Records why ($4) and writes a
-- job.rescued event per attempt to the outbox in the same statement. Returns (id, queue,
-- state, run_at).
WITH t AS (SELECT coalesce($6::timestamptz, now()) AS now),
moved AS (
    UPDATE awa.jobs j
       SET state = CASE WHEN $5::double precision = 0 THEN 'available'
                        ELSE 'retryable' END::awa.job_state,
           run_at = t.now + make_interval(secs => least(3600, $5 * power(2, greatest(j.attempt - 1, 0)))
                                                  * (0.9 + random() * 0.2)),
           errors = j.errors || jsonb_build_array(jsonb_build_object(
                        'at', t.now, 'attempt', j.attempt, 'kind', 'rescued', 'message', $4::text,
                        'claimed_by', j.claimed_by)),
           heartbeat_at = NULL, deadline_at = NULL, claimed_by = NULL, cancel_requested = false,
           callback_id = NULL, callback_timeout_at = NULL
      FROM unnest($1::bigint[], $2::bigint[]) AS c(id, lease), t
     WHERE j.id = c.id AND j.run_lease = c.lease AND j.state = ANY ($3::awa.job_state[])
       AND j.attempt < j.max_attempts AND NOT j.cancel_requested
       -- The reason still holds at the write: no heartbeat landed meanwhile ($7 s), the
       -- holder is still silent ($8 s); NULL skips a check.
       AND ($7::double precision IS NULL
            OR j.heartbeat_at < t.now - make_interval(secs => $7))
       AND ($8::double precision IS NULL OR NOT EXISTS (
            SELECT 1 FROM awa.runtimes r
             WHERE r.instance_id = j.claimed_by AND r.stopped_at IS NULL
               AND r.last_seen_at >= t.now - make_interval(secs => $8)))
    RETURNING j.id, j.queue, j.state, j.kind, j.attempt, j.max_attempts, j.run_at,
              j.errors -> -1 ->> 'claimed_by' AS claimed_by
),
rescued_events AS (
    INSERT INTO awa.events (kind, occurred_at, job_id, payload)
    SELECT 'job.rescued', t.now, m.id,
           jsonb_build_object('job_id', m.id, 'kind', m.kind, 'queue', m.queue,
                              'attempt', m.attempt, 'max_attempts', m.max_attempts,
                              'reason', $4::text, 'claimed_by', m.claimed_by,
                              'outcome', 'retried', 'run_at', m.run_at)
      FROM moved m, t
)
SELECT id, queue, state, run_at FROM moved;

-- name: rescue_fail
-- Fail rescued attempts (id/lease pairs still in a state of $3, no cancel requested, the
-- reason re-checked: $6 heartbeat staleness, $7 holder silence, NULL skips) that
-- have no attempts left, moving them to history with the reason $4; each writes a
-- job.rescued and a job.failed event to the outbox in the same statement. Returns the ids.
WITH t AS (SELECT coalesce($5::timestamptz, now()) AS now),
gone AS (
    DELETE FROM awa.jobs j
     USING unnest($1::bigint[], $2::bigint[]) AS c(id, lease)
     WHERE j.id = c.id AND j.run_lease = c.lease AND j.state = ANY ($3::awa.job_state[])
       AND j.attempt >= j.max_attempts AND NOT j.cancel_requested
       -- The reason still holds at the write (as in rescue_retry: $6 heartbeat, $7 holder).
       AND ($6::double precision IS NULL
            OR j.heartbeat_at < coalesce($5::timestamptz, now()) - make_interval(secs => $6))
       AND ($7::double precision IS NULL OR NOT EXISTS (
            SELECT 1 FROM awa.runtimes r
             WHERE r.instance_id = j.claimed_by AND r.stopped_at IS NULL
               AND r.last_seen_at >= coalesce($5::timestamptz, now())
                                     - make_interval(secs => $7)))
    RETURNING j.*
),
failed_events AS (
    INSERT INTO awa.events (kind, occurred_at, job_id, payload)
    SELECT e.kind, t.now, g.id,
           jsonb_build_object('job_id', g.id, 'kind', g.kind, 'queue', g.queue,
                              'attempt', g.attempt, 'max_attempts', g.max_attempts)
           || CASE WHEN e.kind = 'job.rescued'
                   THEN jsonb_build_object('reason', $4::text, 'claimed_by', g.claimed_by,
                                           'outcome', 'failed')
                   ELSE jsonb_build_object('tags', to_jsonb(g.tags), 'rescued', true,
                                           'error', jsonb_build_object(
                                               'at', t.now, 'attempt', g.attempt,
                                               'kind', 'rescued', 'message', $4::text,
                                               'claimed_by', g.claimed_by)) END
      FROM gone g, t, (VALUES (1, 'job.rescued'), (2, 'job.failed')) AS e(ord, kind)
     ORDER BY g.id, e.ord
)
INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority, original_priority,
                           attempt, max_attempts, run_at, created_at, attempted_at, finalized_at,
                           timeout_s, tags, metadata, errors, progress, result, unique_key,
                           unique_states, run_lease, claimed_by)
SELECT r.current_slot, g.id, g.kind, g.queue, g.args, 'failed', g.priority,
       g.original_priority, g.attempt, g.max_attempts, g.run_at, g.created_at, g.attempted_at,
       t.now, g.timeout_s, g.tags, g.metadata,
       g.errors || jsonb_build_array(jsonb_build_object(
           'at', t.now, 'attempt', g.attempt, 'kind', 'rescued', 'message', $4::text,
           'claimed_by', g.claimed_by)),
       g.progress, NULL, g.unique_key, g.unique_states, g.run_lease, g.claimed_by
  FROM gone g, t, awa.ring_state r
RETURNING id;

-- name: delete_expired_history
-- Delete up to $3 finished jobs in state $1 finalized more than $2 seconds ago (only used
-- for states whose retention is shorter than the ring's horizon).
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
-- Release up to $1 unique keys whose job no longer exists (history pruned by TRUNCATE).
DELETE FROM awa.job_unique u
 WHERE u.unique_key IN (
     SELECT x.unique_key FROM awa.job_unique x
      WHERE NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.id = x.job_id)
        AND NOT EXISTS (SELECT 1 FROM awa.jobs_done d WHERE d.id = x.job_id)
      LIMIT $1);

-- name: ring_lock
-- The terminal-history ring, row-locked for one rotate pass (no row: another pass holds it):
-- current slot, slot count, and seconds since it last rotated by the database clock (or $1).
SELECT current_slot, slot_count,
       extract(epoch FROM coalesce($1::timestamptz, now()) - rotated_at)::float8 AS age_s
  FROM awa.ring_state
   FOR UPDATE SKIP LOCKED;

-- name: slot_is_empty
-- True when ring slot $1 holds no rows.
SELECT NOT EXISTS (SELECT 1 FROM awa.jobs_done WHERE slot = $1);

-- name: slot_is_expired
-- True when every row of slot $1 is past its state's retention ($2 completed, $3 failed,
-- $4 cancelled, in seconds).
WITH t AS (SELECT coalesce($5::timestamptz, now()) AS now)
SELECT NOT EXISTS (
    SELECT 1 FROM awa.jobs_done d, t
     WHERE d.slot = $1
       AND d.finalized_at >= t.now - make_interval(secs => CASE d.state
                WHEN 'completed' THEN $2::float8 WHEN 'failed' THEN $3::float8 ELSE $4::float8 END));

-- name: truncate_slot
-- TRUNCATE ring partition {slot} (a template: the slot number is formatted in, validated).
TRUNCATE awa.jobs_done_{slot};

-- name: advance_ring
-- Move the current slot to $1 (compare-and-set on the old slot $2).
UPDATE awa.ring_state SET current_slot = $1, rotated_at = coalesce($3::timestamptz, now())
 WHERE current_slot = $2
RETURNING current_slot;

-- name: local_lock_timeout
-- Bound every lock wait of the rest of this transaction to $1 (a duration such as '200ms').
SELECT set_config('lock_timeout', $1::text, true);

-- name: queue_stats_refresh
-- Recompute depth and lag per queue and live state into awa.queue_stats.
WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now),
fresh AS (
    SELECT queue, state, count(*) AS count,
           CASE WHEN state = 'available' THEN extract(epoch FROM (SELECT now FROM t) - min(run_at)) END AS lag_s
      FROM awa.jobs GROUP BY queue, state
), gone AS (
    DELETE FROM awa.queue_stats s
     WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.queue = s.queue AND f.state = s.state)
)
INSERT INTO awa.queue_stats (queue, state, count, lag_s, updated_at)
SELECT f.queue, f.state, f.count, f.lag_s, t.now FROM fresh f, t
ON CONFLICT (queue, state) DO UPDATE
   SET count = EXCLUDED.count, lag_s = EXCLUDED.lag_s, updated_at = EXCLUDED.updated_at
RETURNING queue, state::text AS state, count, lag_s;

-- name: age_priorities
-- Raise the priority (lower number) of up to $2 available jobs that waited more than $1 s
-- per step already gained.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
aged AS (
    SELECT id FROM awa.jobs, t
     WHERE state = 'available' AND priority > 1
       AND run_at < t.now - make_interval(secs => $1 * (original_priority - priority + 1))
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE awa.jobs j SET priority = j.priority - 1 FROM aged WHERE j.id = aged.id;

-- name: refresh_admin_metadata
-- Upsert the queue/kind pairs seen in live jobs and runtime registrations; zero the rest.
-- A pair that is neither live nor handled any more keeps its row with handled_by = 0 and
-- live_jobs = 0 (it is not deleted): operators can still see that the kind existed, from
-- first_seen until last_seen (the last refresh that saw it), and the row comes back to life
-- with its original first_seen if the pair reappears. Rows are only written when a count
-- changes to zero, so idle pairs cost no writes. The row count reported is the pairs upserted
-- (live or handled now), not the ones zeroed.
WITH t AS (SELECT coalesce($1::timestamptz, now()) AS now),
live AS (SELECT queue, kind, count(*) AS n FROM awa.jobs GROUP BY queue, kind),
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

-- name: record_leader
-- Record this process as the maintenance leader of term $5 (won at $2, lane mode $3).
INSERT INTO awa.maintenance_leader (instance_id, won_at, mode, mode_reason, updated_at, term)
VALUES ($1, coalesce($2::timestamptz, now()), $3, $4, coalesce($2::timestamptz, now()), $5)
ON CONFLICT (singleton) DO UPDATE
   SET instance_id = EXCLUDED.instance_id, won_at = EXCLUDED.won_at, mode = EXCLUDED.mode,
       mode_reason = EXCLUDED.mode_reason, updated_at = EXCLUDED.updated_at,
       term = EXCLUDED.term;

-- name: get_leader
-- The recorded maintenance leader, if any.
SELECT instance_id, won_at, mode, mode_reason, updated_at, term FROM awa.maintenance_leader;

-- name: leader_try_lock
-- Try to take the session-scoped maintenance leader lock $1 (true: this session leads).
SELECT pg_try_advisory_lock($1);

-- name: leader_holds_lock
-- True while this session still holds the leader lock $1 (the watchdog's health check).
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND pid = pg_backend_pid() AND objsubid = 1
                  AND ((classid::bigint << 32) | objid::bigint) = $1);

-- name: db_epoch
-- The database clock now, as a Unix epoch (the leader learns its offset from the app clock).
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: leader_unlock
-- Give up the maintenance leader lock $1.
SELECT pg_advisory_unlock($1);

-- name: term_begin
-- Start the next leadership term for holder $1 (the caller holds the leader lock). As an
-- UPDATE of the term row it waits for every fenced transaction of older terms still in
-- flight (they share-lock the row); later ones see the new term. Returns the new term.
UPDATE awa.leader_term
   SET term = term + 1, holder = $1, started_at = coalesce($2::timestamptz, now())
RETURNING term;

-- name: term_fence
-- Open a maintenance transaction of term $1: share-lock the term row while $1 is current.
-- No row: a newer term began and the caller is deposed. Also bounds how long this
-- transaction may sit idle ($2, e.g. '5s'), so a vanished client cannot hold the row, and
-- with it the next term's start, for longer than that.
SELECT term, set_config('idle_in_transaction_session_timeout', $2::text, true) AS idle_limit
  FROM awa.leader_term
 WHERE term = $1
   FOR SHARE;

-- name: current_term
-- The current leadership term, its holder and when it began.
SELECT term, holder, started_at FROM awa.leader_term;

-- name: write_health
-- Upsert per-branch health rows (parallel arrays, one element per branch). max_lateness_s is
-- the worst lateness since the previous write (NULL: the branch did not run meanwhile).
INSERT INTO awa.maintenance_health (branch, lane, interval_s, last_started_at, last_finished_at,
        last_duration_s, last_lateness_s, runs, errors, overruns, delayed, rows_touched,
        last_error, max_lateness_s, leader_instance, updated_at)
SELECT b.*, $15, coalesce($16::timestamptz, now())
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[], $5::timestamptz[],
              $6::float8[], $7::float8[], $8::bigint[], $9::bigint[], $10::bigint[],
              $11::boolean[], $12::bigint[], $13::text[], $14::float8[]) AS b
ON CONFLICT (branch) DO UPDATE
   SET lane = EXCLUDED.lane, interval_s = EXCLUDED.interval_s,
       last_started_at = EXCLUDED.last_started_at, last_finished_at = EXCLUDED.last_finished_at,
       last_duration_s = EXCLUDED.last_duration_s, last_lateness_s = EXCLUDED.last_lateness_s,
       max_lateness_s = EXCLUDED.max_lateness_s,
       runs = EXCLUDED.runs, errors = EXCLUDED.errors, overruns = EXCLUDED.overruns,
       delayed = EXCLUDED.delayed, rows_touched = EXCLUDED.rows_touched,
       last_error = EXCLUDED.last_error, leader_instance = EXCLUDED.leader_instance,
       updated_at = EXCLUDED.updated_at;

-- name: read_health
-- Persisted per-branch health, lane then branch.
SELECT * FROM awa.maintenance_health ORDER BY lane, branch;
