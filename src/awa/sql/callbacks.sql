-- Callbacks (external waits): registration by a running attempt, parking in the batched
-- completion flush, resolution by the API or the HTTP ingress, retention.
--
-- Lock order, for every writer: callback rows before job rows, and within each table rows
-- in id order. The resolver locks one callback, then its job; the park flush locks its
-- callbacks in id order (lock_callbacks), then its jobs in id order (park_jobs locks its
-- whole batch first, which covers every job the transaction touches later). Rescue, cancel,
-- heartbeats and the completion flush lock only jobs, each batch in id order (see jobs.sql).
-- Row order is what keeps two multi-row writers apart: without it a park and a heartbeat
-- (or two flushes) listing the same jobs in different orders could each hold a row the
-- other waits for, and PostgreSQL would abort one as a deadlock. tests/store/test_lock_order.py
-- races such writers in opposite orders.
--
-- A resolution that arrives while its attempt still runs (the external system answered
-- before the handler returned WaitForCallback) is recorded on the callback row only; the park
-- flush sees it under the callback lock and applies it at once, so the job never waits for a
-- callback that was already resolved.

-- name: register_callback
-- Register callback $3 for the running attempt of job $1 (lease $2): token hash $4, timing
-- out $5 seconds from now, resume flag $6. Returns its timeout; no row when the attempt no
-- longer holds the job (rescued or finished elsewhere).
WITH t AS (SELECT coalesce($7::timestamptz, now()) AS now),
job AS (
    UPDATE awa.jobs j
       SET callback_id = $3::uuid,
           callback_timeout_at = t.now + make_interval(secs => $5::double precision)
      FROM t
     WHERE j.id = $1 AND j.run_lease = $2 AND j.state = 'running'
    RETURNING j.id, j.run_lease, j.callback_timeout_at, t.now
)
INSERT INTO awa.callbacks (id, job_id, run_lease, token_hash, resume, created_at, timeout_at)
SELECT $3::uuid, job.id, job.run_lease, $4::bytea, $6::boolean, job.now, job.callback_timeout_at
  FROM job
RETURNING timeout_at;

-- name: lock_callbacks
-- Lock the callbacks $1 in id order (the park flush, before it touches their jobs).
SELECT id FROM awa.callbacks WHERE id = ANY ($1::uuid[]) ORDER BY id FOR UPDATE;

-- name: park_jobs
-- Park running attempts (id/lease pairs) that registered callback $3 and were not asked to
-- cancel: state waiting_external, heartbeat and deadline cleared, final progress $4 kept.
-- Returns (id, resolved): resolved means the callback was answered before the park.
WITH locked AS (SELECT id FROM awa.jobs WHERE id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE)
UPDATE awa.jobs j
   SET state = 'waiting_external', heartbeat_at = NULL, deadline_at = NULL,
       progress = CASE WHEN c.progress IS NULL THEN j.progress
                       ELSE nullif(c.progress, 'null'::jsonb) END
  FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::jsonb[])
           AS c(id, lease, callback_id, progress)
  JOIN awa.callbacks cb ON cb.id = c.callback_id
 WHERE j.id = c.id AND j.run_lease = c.lease AND j.state = 'running'
   AND j.callback_id = c.callback_id AND NOT j.cancel_requested
   AND (SELECT count(*) FROM locked) >= 0  -- the batch, locked in id order first (see jobs.sql)
RETURNING j.id, (cb.state <> 'pending') AS resolved;

-- name: lock_callback
-- Callback $1, locked for a resolution, with the statement time (pinned by $2 in tests).
SELECT id, job_id, run_lease, token_hash, resume, state, timeout_at,
       coalesce($2::timestamptz, now()) AS now
  FROM awa.callbacks
 WHERE id = $1::uuid
   FOR UPDATE;

-- name: lock_callback_job
-- Job $1 locked for a resolution, if its attempt $3 still waits on callback $2 (running:
-- the handler has not parked yet; waiting_external: parked). Returns its state.
SELECT state FROM awa.jobs
 WHERE id = $1 AND callback_id = $2::uuid AND run_lease = $3
   AND state IN ('running', 'waiting_external')
   FOR UPDATE;

-- name: resolve_callback
-- Record the resolution of pending callback $1: state $2 (completed, failed, retried),
-- payload $3, error message $4, retry delay $5 seconds (NULL: default backoff).
UPDATE awa.callbacks
   SET state = $2, payload = $3::jsonb, error = $4, retry_delay_s = $5::double precision,
       resolved_at = coalesce($6::timestamptz, now())
 WHERE id = $1::uuid AND state = 'pending';

-- name: extend_callback
-- Heartbeat: move the timeout of pending callback $1, and of its job's wait, to $2 seconds
-- from now. Returns the new timeout.
WITH t AS (
    SELECT coalesce($3::timestamptz, now()) + make_interval(secs => $2::double precision) AS at
),
cb AS (
    UPDATE awa.callbacks c SET timeout_at = t.at
      FROM t
     WHERE c.id = $1::uuid AND c.state = 'pending'
    RETURNING c.id, c.job_id, c.run_lease, c.timeout_at
),
job AS (
    UPDATE awa.jobs j SET callback_timeout_at = cb.timeout_at
      FROM cb
     WHERE j.id = cb.job_id AND j.callback_id = cb.id AND j.run_lease = cb.run_lease
    RETURNING j.id
)
SELECT cb.timeout_at FROM cb;

-- name: callback_complete_jobs
-- Parked jobs among $1 whose callback completed without resume: move them to history as
-- completed with the callback's payload as result. Returns the ids.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
locked AS (SELECT id FROM awa.jobs WHERE id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE),
done AS (
    DELETE FROM awa.jobs j
     USING awa.callbacks cb
     WHERE j.id = ANY ($1::bigint[]) AND j.state = 'waiting_external'
       AND (SELECT count(*) FROM locked) >= 0
       AND cb.id = j.callback_id AND cb.run_lease = j.run_lease
       AND cb.state = 'completed' AND NOT cb.resume
    RETURNING j AS job, j.*, cb.payload AS c_result
)
INSERT INTO awa.jobs_done
SELECT h.*
  FROM done d, t, awa.ring_state r,
       awa.history_row(
           d.job, r.current_slot, 'completed', t.now,
           d.errors,
           d.progress, d.c_result) h
RETURNING id;

-- name: callback_fail_jobs
-- Parked jobs among $1 whose callback failed, or asked for a retry with no attempt left:
-- move them to history as failed, appending an error record (message, callback id, action,
-- payload), and write a job.failed event for each. Returns the ids.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
locked AS (SELECT id FROM awa.jobs WHERE id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE),
gone AS (
    DELETE FROM awa.jobs j
     USING awa.callbacks cb
     WHERE j.id = ANY ($1::bigint[]) AND j.state = 'waiting_external'
       AND (SELECT count(*) FROM locked) >= 0
       AND cb.id = j.callback_id AND cb.run_lease = j.run_lease
       AND (cb.state = 'failed' OR (cb.state = 'retried' AND j.attempt >= j.max_attempts))
    RETURNING j AS job, j.*, cb.id AS cb_id, cb.state AS cb_state, cb.error AS cb_error,
              cb.payload AS cb_payload
),
failed_events AS (
    -- The job.failed lifecycle event, in the same statement (outbox: ADR 006).
    INSERT INTO awa.events (kind, occurred_at, job_id, payload)
    SELECT 'job.failed', t.now, g.id,
           jsonb_build_object('job_id', g.id, 'kind', g.kind, 'queue', g.queue,
               'attempt', g.attempt, 'max_attempts', g.max_attempts,
               'tags', to_jsonb(g.tags), 'rescued', false,
               'error', jsonb_build_object('kind', 'callback', 'message', g.cb_error,
                                           'callback_id', g.cb_id))
      FROM gone g, t
)
INSERT INTO awa.jobs_done
SELECT h.*
  FROM gone g, t, awa.ring_state r,
       awa.history_row(
           g.job, r.current_slot, 'failed', t.now,
           g.errors || jsonb_build_array(
               jsonb_build_object('at', t.now, 'attempt', g.attempt, 'kind', 'callback',
                                  'message', g.cb_error, 'callback_id', g.cb_id,
                                  'action', CASE g.cb_state WHEN 'failed' THEN 'fail' ELSE 'retry' END)
               || CASE WHEN g.cb_payload IS NULL THEN '{}'::jsonb
                       ELSE jsonb_build_object('payload', g.cb_payload) END),
           g.progress, NULL) h
RETURNING id;

-- name: callback_retry_jobs
-- Parked jobs among $1 whose callback asked for a retry and that have attempts left: a
-- failed attempt, retryable after the callback's delay (default 1 s x 2^(attempt-1), capped
-- at an hour, +-10 % jitter), available at once when the delay is 0. Returns (id, queue,
-- state, run_at).
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
locked AS (SELECT id FROM awa.jobs WHERE id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE),
due AS (
    SELECT j.id, cb.id AS cb_id, cb.error AS cb_error, cb.payload AS cb_payload,
           coalesce(cb.retry_delay_s,
                    least(3600, power(2, greatest(j.attempt - 1, 0))) * (0.9 + random() * 0.2))
               AS delay_s
      FROM awa.jobs j
      JOIN awa.callbacks cb ON cb.id = j.callback_id AND cb.run_lease = j.run_lease
     WHERE j.id = ANY ($1::bigint[]) AND j.state = 'waiting_external'
       AND cb.state = 'retried' AND j.attempt < j.max_attempts
)
UPDATE awa.jobs j
   SET state = CASE WHEN due.delay_s <= 0 THEN 'available' ELSE 'retryable' END::awa.job_state,
       run_at = t.now + make_interval(secs => due.delay_s),
       errors = j.errors || jsonb_build_array(
           jsonb_build_object('at', t.now, 'attempt', j.attempt, 'kind', 'callback',
                              'message', due.cb_error, 'callback_id', due.cb_id,
                              'action', 'retry')
           || CASE WHEN due.cb_payload IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('payload', due.cb_payload) END),
       metadata = j.metadata - 'awa.callback',
       callback_id = NULL, callback_timeout_at = NULL, heartbeat_at = NULL, deadline_at = NULL,
       claimed_by = NULL, cancel_requested = false
  FROM due, t
 WHERE j.id = due.id AND j.state = 'waiting_external' AND j.callback_id = due.cb_id
   AND (SELECT count(*) FROM locked) >= 0
RETURNING j.id, j.queue, j.state, j.run_at;

-- name: callback_resume_jobs
-- Parked jobs among $1 whose callback completed with resume: available now, the attempt
-- given back (the continuation is the same attempt), and the resolution stored under
-- metadata 'awa.callback' with that attempt's number for the handler's ctx.callback.
-- Returns (id, queue, state, run_at).
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
locked AS (SELECT id FROM awa.jobs WHERE id = ANY ($1::bigint[]) ORDER BY id FOR UPDATE),
due AS (
    SELECT j.id, cb.id AS cb_id, cb.payload AS cb_payload, cb.resolved_at
      FROM awa.jobs j
      JOIN awa.callbacks cb ON cb.id = j.callback_id AND cb.run_lease = j.run_lease
     WHERE j.id = ANY ($1::bigint[]) AND j.state = 'waiting_external'
       AND cb.state = 'completed' AND cb.resume
)
UPDATE awa.jobs j
   SET state = 'available', run_at = t.now, attempt = j.attempt - 1,
       metadata = j.metadata || jsonb_build_object('awa.callback', jsonb_build_object(
           'id', due.cb_id, 'attempt', j.attempt, 'payload', due.cb_payload,
           'resolved_at', due.resolved_at)),
       callback_id = NULL, callback_timeout_at = NULL, heartbeat_at = NULL, deadline_at = NULL,
       claimed_by = NULL
  FROM due, t
 WHERE j.id = due.id AND j.state = 'waiting_external' AND j.callback_id = due.cb_id
   AND (SELECT count(*) FROM locked) >= 0
RETURNING j.id, j.queue, j.state, j.run_at;

-- name: prune_callbacks
-- Forget up to $2 callbacks registered more than $1 seconds ago that no live job refers to
-- any more. Returns how many were deleted.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
old AS (
    SELECT c.id FROM awa.callbacks c, t
     WHERE c.created_at < t.now - make_interval(secs => $1::double precision)
       AND NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.callback_id = c.id)
     ORDER BY c.created_at
     LIMIT $2
       FOR UPDATE OF c SKIP LOCKED
),
gone AS (
    DELETE FROM awa.callbacks c USING old WHERE c.id = old.id RETURNING c.id
)
SELECT count(*) AS deleted FROM gone;
