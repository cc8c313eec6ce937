-- Recovery of running attempts whose holder is gone, stuck or out of time: the finds (startup
-- recovery pages through them before a runtime reports ready; the rescue branches run them
-- every pass) and the rescue writes, each re-checking (id, run_lease, state) so racing a
-- worker or another leader cannot corrupt a job.

-- name: find_abandoned_running
-- Running attempts whose holder's liveness row is missing, stopped, or unseen for more
-- than $1 seconds (the presence-lock check lives in find_orphaned_running). Served by
-- jobs_claimed_by_idx and the runtimes primary key.
SELECT j.id, j.run_lease FROM awa.jobs j
 WHERE j.state = 'running'
   AND NOT EXISTS (
       SELECT 1 FROM awa.runtimes r
        WHERE r.instance_id = j.claimed_by
          AND r.stopped_at IS NULL
          AND r.last_seen_at >= coalesce($3::timestamptz, now()) - make_interval(secs => $1))
 ORDER BY j.id
 LIMIT $2;

-- name: in_flight
-- Whether anything exists for the rescue branches to watch: a running attempt, one with a
-- deadline, a parked one. Three index probes (jobs_running_idx, jobs_deadline_idx,
-- jobs_callback_timeout_idx); an idle database answers from three empty index pages.
SELECT EXISTS (SELECT 1 FROM awa.jobs WHERE state = 'running') AS running,
       EXISTS (SELECT 1 FROM awa.jobs WHERE state = 'running' AND deadline_at IS NOT NULL)
           AS with_deadline,
       EXISTS (SELECT 1 FROM awa.jobs WHERE state = 'waiting_external') AS waiting;

-- name: find_rescuable_running
-- One pass of rescue_stale_heartbeats in one round trip: running attempts whose runtime's
-- presence lock is gone (claimed more than $1 s ago; lock key1 = $3, key2 =
-- hashtext(claimed_by)) and, unless $6 is NULL, whose runtime has not beaten its liveness
-- row for $6 s (a live runtime with a half-open presence connection keeps beating through
-- its pool), flagged orphaned, or whose heartbeat is older than $2 s.
SELECT id, run_lease, orphaned, stale FROM (
    SELECT j.id, j.run_lease, j.heartbeat_at,
           j.attempted_at < coalesce($5::timestamptz, now()) - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                  AND l.database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())
                  AND l.classid::bigint = $3::bigint
                  AND l.objid::bigint = (hashtext(j.claimed_by)::bigint & 4294967295))
           AND ($6::double precision IS NULL OR NOT EXISTS (
               SELECT 1 FROM awa.runtimes r
                WHERE r.instance_id = j.claimed_by AND r.stopped_at IS NULL
                  AND r.last_seen_at >= coalesce($5::timestamptz, now())
                                        - make_interval(secs => $6)))
               AS orphaned,
           j.heartbeat_at < coalesce($5::timestamptz, now()) - make_interval(secs => $2)
               AS stale
      FROM awa.jobs j
     WHERE j.state = 'running'
) r
 WHERE orphaned OR stale
 ORDER BY heartbeat_at
 LIMIT $4;
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
    RETURNING j AS job, j.*
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
INSERT INTO awa.jobs_done
SELECT h.*
  FROM gone g, t, awa.ring_state r,
       awa.history_row(
           g.job, r.current_slot, 'failed', t.now,
           g.errors || jsonb_build_array(jsonb_build_object(
               'at', t.now, 'attempt', g.attempt, 'kind', 'rescued', 'message', $4::text,
               'claimed_by', g.claimed_by)),
           g.progress, NULL) h
RETURNING id;
