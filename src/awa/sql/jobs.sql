-- Producer and worker queries on the hot path. Every query takes an optional $now
-- (NULL => the database's now()) so tests can pin time.
--
-- Progress arrays (heartbeat and the queries that end an attempt) use one convention: an SQL
-- NULL element keeps the stored progress, the JSON value null clears it, anything else
-- replaces it. A NULL array keeps every job's progress (unnest pads it with NULLs), so the
-- common case of no progress at all costs nothing on the wire.
--
-- Lock order: every statement that writes several job rows (heartbeat, the completion
-- flush's complete/finalize/reschedule batches, finalize_cancel_requested, rescue, the
-- callback park) first locks every row of its batch, in id order, and only then writes:
--
--     locked AS (SELECT j.id FROM awa.jobs j
--                  JOIN unnest(ids, leases) AS l(id, lease)
--                    ON j.id = l.id AND j.run_lease = l.lease
--                 ORDER BY j.id FOR UPDATE OF j)
--     ... WHERE ... AND (SELECT count(*) FROM locked) >= 0
--
-- The condition is always true; it is there because it makes the lock step run, to the
-- end, before the statement reads its first row: PostgreSQL evaluates a condition that does
-- not depend on any row once, up front (a "One-Time Filter"), whereas a CTE joined like a
-- table may be read lazily, or not at all when nothing else matches. So the whole batch is
-- locked even when no row qualifies, and the later statements of the same transaction
-- (rescue's retry and fail, the flush's cancel step) touch only rows it already holds. Two
-- such writers over the same jobs wait for each other at most once, never in a cycle,
-- whatever order their batches list the ids in. Claims, promotion and aging use SKIP
-- LOCKED and never wait. Only the rows still at the batch's leases are locked: a stale
-- report names a job that may be available again (rescued, retried), and locking it made a
-- claim racing the report skip it and come back short (the stateful contract test found
-- it). None of these statements writes a row at another lease, and a lease never comes
-- back once a claim replaced it (ADR 040), so what a later statement of the transaction
-- locks is a subset of what the first one did: still no cycle.

-- name: insert_job
-- Insert one job; state is scheduled when run_at is in the future, else available. In the
-- same statement, wake the queue's dispatchers (available) or announce the due time to the
-- maintenance leader (scheduled); both notifications are delivered at commit. args and
-- metadata come back as stored (jsonb-normalised), as text: the caller's connection may
-- lack awa's codecs.
WITH t AS (SELECT coalesce($12::timestamptz, now()) AS now),
ins AS (
    INSERT INTO awa.jobs (id, kind, queue, args, state, priority, original_priority, max_attempts,
                          run_at, created_at, timeout_s, tags, metadata, unique_key, unique_states)
    SELECT coalesce($13::bigint, nextval('awa.job_id_seq')), $1, $2, $3::jsonb,
           CASE WHEN coalesce($5, t.now) > t.now THEN 'scheduled' ELSE 'available' END::awa.job_state,
           $4, $4, $6, coalesce($5, t.now), t.now, $7, $8, $9::jsonb, $10, $11::awa.job_state[]
      FROM t
    RETURNING id, state, run_at, created_at, queue, args, metadata
)
SELECT ins.id, ins.state, ins.run_at, ins.created_at,
       ins.args::text AS args, ins.metadata::text AS metadata
  FROM ins
 CROSS JOIN LATERAL (
       SELECT pg_notify(CASE WHEN ins.state = 'available' THEN 'awa_jobs' ELSE 'awa_due' END,
                        CASE WHEN ins.state = 'available' THEN ins.queue
                             ELSE extract(epoch FROM ins.run_at)::text END)) AS notified;

-- name: insert_claiming
-- insert_job for a producer whose own process runs a dispatcher of the job's queue with a
-- free slot (ADR 045): when the job is due now, the queue is not paused and no available
-- job of a kind $11 that dispatcher handles would be claimed before it (priority <= $4:
-- dispatch order is priority, run_at, id; conservative for a run_at given in the past, where
-- an equal-priority job due later also counts as ahead), it
-- goes in already claimed for runtime $12, exactly as claim_batch would claim it (first
-- lease generation, attempt 1, heartbeat and deadline from now), and nobody is notified:
-- the producer's process runs it as soon as the commit returns, without the NOTIFY, wake-up
-- and claim round trip. Otherwise it goes in and is announced like insert_job's. The
-- commit stays durable: it is the producer's insert. The backlog probe reads jobs_claim_idx
-- (queue, kind, priority, ...), one range per kind, and stops at the first row (LIMIT 1 in
-- the lateral: a semi-join could be planned as a hash over the queue's whole backlog; the
-- ORDER BY of the index keeps a plan that expects many matches off a Seq Scan). `d`
-- is MATERIALIZED so the probes run once, not once per column that reads `claim`.
WITH t AS (SELECT coalesce($10::timestamptz, now()) AS now),
d AS MATERIALIZED (
    SELECT t.now, coalesce($5::timestamptz, t.now) AS run_at,
           coalesce($5::timestamptz, t.now) <= t.now
           AND NOT EXISTS (SELECT 1 FROM awa.queue_pauses p WHERE p.queue = $2)
           AND NOT EXISTS (
               SELECT 1 FROM unnest($11::text[]) AS k(kind)
                CROSS JOIN LATERAL (
                      SELECT 1 FROM awa.jobs j
                       WHERE j.state = 'available' AND j.queue = $2 AND j.kind = k.kind
                         AND j.priority <= $4::smallint
                       ORDER BY j.priority, j.run_at, j.id
                       LIMIT 1) ahead
           ) AS claim
      FROM t
),
ins AS (
    INSERT INTO awa.jobs (id, kind, queue, args, state, priority, original_priority, max_attempts,
                          run_at, created_at, timeout_s, tags, metadata, attempt, run_lease,
                          attempted_at, heartbeat_at, claimed_by, deadline_at)
    SELECT nextval('awa.job_id_seq'), $1, $2, $3::jsonb,
           CASE WHEN d.claim THEN 'running' WHEN d.run_at > d.now THEN 'scheduled'
                ELSE 'available' END::awa.job_state,
           $4::smallint, $4::smallint, $6, d.run_at, d.now, $7::float8, $8, $9::jsonb,
           CASE WHEN d.claim THEN 1 ELSE 0 END,
           CASE WHEN d.claim THEN (1::bigint << 32) | floor(random() * 4294967296)::bigint
                ELSE 0 END,
           CASE WHEN d.claim THEN d.now END,
           CASE WHEN d.claim THEN d.now END,
           CASE WHEN d.claim THEN $12 END,
           CASE WHEN d.claim THEN d.now + make_interval(secs => $7::float8) END
      FROM d
    RETURNING *
)
SELECT ins.id, ins.kind, ins.queue, ins.state, ins.priority, ins.attempt, ins.max_attempts,
       ins.run_at, ins.created_at, ins.attempted_at, ins.heartbeat_at, ins.deadline_at,
       ins.timeout_s, ins.tags, ins.run_lease, ins.claimed_by, ins.progress::text AS progress,
       ins.args::text AS args, ins.metadata::text AS metadata, ins.errors::text AS errors,
       CASE WHEN ins.state = 'running' THEN NULL
            ELSE pg_notify(CASE WHEN ins.state = 'available' THEN 'awa_jobs' ELSE 'awa_due' END,
                           CASE WHEN ins.state = 'available' THEN ins.queue
                                ELSE extract(epoch FROM ins.run_at)::text END) END AS notified
  FROM ins;

-- name: claim_unique_key
-- Reserve a unique key for a new job id; returns no row when another job holds the key.
INSERT INTO awa.job_unique (unique_key, job_id)
VALUES ($1, nextval('awa.job_id_seq'))
ON CONFLICT (unique_key) DO NOTHING
RETURNING job_id;

-- name: job_by_unique_key
-- The job currently holding a unique key (live or finished). jsonb columns come back as
-- text: this may run on a caller's connection that has no awa codecs.
SELECT j.id, j.kind, j.queue, j.args::text AS args, j.state, j.priority, j.attempt,
       j.max_attempts, j.run_at, j.created_at, j.attempted_at, j.finalized_at, j.heartbeat_at,
       j.deadline_at, j.timeout_s, j.tags, j.metadata::text AS metadata, j.errors::text AS errors,
       j.progress::text AS progress, j.result::text AS result, j.unique_key, j.run_lease,
       j.claimed_by
  FROM awa.job_unique u JOIN awa.all_jobs j ON j.id = u.job_id
 WHERE u.unique_key = $1;

-- name: reserve_job_ids
-- Allocate $1 job ids in one round trip, for the COPY insert path. One array, not $1 rows:
-- the driver decodes an int8 array in C, where 10k records cost ~2 ms of client CPU.
SELECT array_agg(nextval('awa.job_id_seq')) AS ids FROM generate_series(1, $1);

-- name: notify_queues
-- Wake idle dispatchers of these queues (delivered at commit; identical payloads coalesce).
SELECT pg_notify('awa_jobs', q) FROM unnest($1::text[]) AS q;

-- name: announce_work
-- Tell the maintenance leader that jobs were claimed (branches stretched by idleness resume
-- their cadence; awa.worker.work_announcer, ADR 029).
SELECT pg_notify('awa_due', 'work');

-- name: notify_due
-- Tell the maintenance leader a deferred job is due at epoch $1 (so promotion runs on time).
SELECT pg_notify('awa_due', $1::text);

-- name: claim_batch
-- Claim up to $3 available jobs of queue $1 whose kind is in $2 for runtime $4, in dispatch
-- order (priority, run_at, id). Each claim draws a new run_lease and starts the attempt's
-- deadline. Commits asynchronously (ADR 040): the commit does not wait for the WAL flush
-- (pickup latency, issue 16). A claim a server crash loses leaves its job available with
-- the lease it had before; the next claim must not hand out the lost claim's lease again
-- (a handler of the lost claim may still run), so a lease is (generation + 1) in its high
-- 32 bits, the generation being the previous lease's high half, and 32 random bits in the
-- low half: two claims after the same durable lease differ with odds 1 - 2^-32, and leases
-- stay positive below 2^63 for 2^31 - 1 claims of one job. Every write that ends or
-- extends an attempt compares leases for equality only.
-- A paused queue (a row in awa.queue_pauses) claims nothing: the NOT EXISTS does not depend
-- on the job row, so PostgreSQL checks it once per statement (an InitPlan, one primary-key
-- probe) before reading the claim index at all (ADR 024).
-- Index-served whatever else is queued (ADR 035): jobs_claim_idx leads with (queue, kind),
-- so `head` reads the first 2 x $3 entries of each handled kind's range (without locking)
-- and keeps the 2 x $3 first in dispatch order; jobs of kinds this runtime does not handle
-- are never read. `first` locks those candidates in dispatch order, SKIP LOCKED, until it
-- holds $3: two claimers racing for the same head split it in order (one takes the first
-- row, the other the next, whatever its kind). Only when others hold so much of the head
-- that the candidates run out does `fill` take the shortfall, kind by kind (kinds seen
-- first in the head first), SKIP LOCKED walking down each kind's range, so a contended
-- head still yields a full batch while any handled job is free. At most $3 rows are
-- claimed; `fill` stops reading and locking once the shortfall is met. An empty head (a
-- paused queue, or nothing available) skips `fill`. The UPDATE finds the rows by primary key, = ANY of an array: a join could be
-- planned as a Seq Scan of awa.jobs, the planner not knowing how few rows there are.
WITH head AS (
    SELECT c.id, c.kind, c.priority, c.run_at
      FROM (SELECT DISTINCT unnest($2::text[]) AS kind) k
     CROSS JOIN LATERAL (
           SELECT j.id, j.kind, j.priority, j.run_at FROM awa.jobs j
            WHERE j.state = 'available' AND j.queue = $1 AND j.kind = k.kind
            ORDER BY j.priority, j.run_at, j.id
            LIMIT 2 * $3) c
     WHERE NOT EXISTS (SELECT 1 FROM awa.queue_pauses p WHERE p.queue = $1)
     ORDER BY c.priority, c.run_at, c.id
     LIMIT 2 * $3
), first AS (
    SELECT j.id, j.kind FROM awa.jobs j
     WHERE j.id = ANY (ARRAY(SELECT id FROM head)) AND j.state = 'available'
     ORDER BY j.priority, j.run_at, j.id
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), kinds AS (
    SELECT k.kind, min(h.pos) AS pos
      FROM (SELECT DISTINCT unnest($2::text[]) AS kind) k
      LEFT JOIN (SELECT kind, row_number() OVER (ORDER BY priority, run_at, id) AS pos
                   FROM head) h USING (kind)
     WHERE (SELECT count(*) FROM first) < $3 AND EXISTS (SELECT 1 FROM head)
     GROUP BY k.kind
), fill AS (
    SELECT p.id
      FROM (SELECT kind FROM kinds ORDER BY pos NULLS LAST, kind) s
     CROSS JOIN LATERAL (
           SELECT j.id FROM awa.jobs j
            WHERE j.state = 'available' AND j.queue = $1 AND j.kind = s.kind
              AND j.id <> ALL (ARRAY(SELECT id FROM first))
            ORDER BY j.priority, j.run_at, j.id
            LIMIT $3 - (SELECT count(*) FROM first)
              FOR UPDATE SKIP LOCKED) p
     LIMIT $3 - (SELECT count(*) FROM first)
), t AS (
    -- The setting is read at commit; SET LOCAL semantics (the true) keep it to this
    -- transaction. The UPDATE reads t, so the call runs with no round trip of its own.
    SELECT coalesce($5::timestamptz, now()) AS now,
           set_config('synchronous_commit', 'off', true) AS relaxed
)
UPDATE awa.jobs j
   SET state = 'running', attempt = j.attempt + 1,
       run_lease = (((j.run_lease >> 32) + 1) << 32) | floor(random() * 4294967296)::bigint,
       attempted_at = t.now, heartbeat_at = t.now, claimed_by = $4,
       deadline_at = t.now + make_interval(secs => j.timeout_s)
  FROM t
 WHERE j.id = ANY (ARRAY(SELECT id FROM first UNION ALL SELECT id FROM fill))
RETURNING j.id, j.kind, j.queue, j.args, j.priority, j.attempt, j.max_attempts, j.run_at,
          j.created_at, j.attempted_at, j.deadline_at, j.timeout_s, j.tags, j.metadata,
          j.errors, j.run_lease, j.unique_key, j.progress;

-- name: complete_batch
-- Move running jobs whose run_lease still matches into terminal history as completed, with
-- their final progress $5. Returns the ids applied; the rest were stale (rescued, cancelled
-- or already finished). The one move to history that spells out its 24 columns instead of
-- calling awa.history_row: the hot completion path, where the call measured ~7 % slower per
-- statement (ADR 016); keep the two in step (tests/db/test_history_row.py).
WITH t AS (SELECT coalesce($4::timestamptz, now()) AS now),
locked AS (SELECT j.id FROM awa.jobs j
              JOIN unnest($1::bigint[], $2::bigint[]) AS l(id, lease)
                ON j.id = l.id AND j.run_lease = l.lease
             ORDER BY j.id FOR UPDATE OF j),
done AS (
    DELETE FROM awa.jobs j
     USING unnest($1::bigint[], $2::bigint[], $3::jsonb[], $5::jsonb[])
           AS c(id, lease, result, progress)
     WHERE j.id = c.id AND j.run_lease = c.lease AND j.state = 'running'
       AND (SELECT count(*) FROM locked) >= 0
    RETURNING j.*, c.result AS c_result,
              CASE WHEN c.progress IS NULL THEN j.progress
                   ELSE nullif(c.progress, 'null'::jsonb) END AS c_progress
)
INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority, original_priority,
                           attempt, max_attempts, run_at, created_at, attempted_at, finalized_at,
                           timeout_s, tags, metadata, errors, progress, result, unique_key,
                           unique_states, run_lease, claimed_by)
SELECT r.current_slot, d.id, d.kind, d.queue, d.args, 'completed', d.priority,
       d.original_priority, d.attempt, d.max_attempts, d.run_at, d.created_at, d.attempted_at,
       t.now, d.timeout_s, d.tags, d.metadata, d.errors, d.c_progress, d.c_result, d.unique_key,
       d.unique_states, d.run_lease, d.claimed_by
  FROM done d, t, awa.ring_state r
RETURNING id;

-- name: finalize_batch
-- Move running (or parked) jobs whose run_lease matches into terminal history as failed or
-- cancelled ($3), appending the error record $4, with their final progress $6. Each job that
-- became failed writes a job.failed event to the outbox in the same statement. Returns the
-- ids applied.
WITH t AS (SELECT coalesce($5::timestamptz, now()) AS now),
locked AS (SELECT j.id FROM awa.jobs j
              JOIN unnest($1::bigint[], $2::bigint[]) AS l(id, lease)
                ON j.id = l.id AND j.run_lease = l.lease
             ORDER BY j.id FOR UPDATE OF j),
gone AS (
    DELETE FROM awa.jobs j
     USING unnest($1::bigint[], $2::bigint[], $3::awa.job_state[], $4::jsonb[], $6::jsonb[])
           AS c(id, lease, new_state, error, progress)
     WHERE j.id = c.id AND j.run_lease = c.lease AND j.state IN ('running', 'waiting_external')
       AND (SELECT count(*) FROM locked) >= 0
       -- an operator's cancel request wins over a failed last attempt (the caller sends
       -- those to finalize_cancel_requested)
       AND NOT (j.cancel_requested AND c.new_state = 'failed')
    RETURNING j AS job, j.*, c.new_state, c.error,
              CASE WHEN c.progress IS NULL THEN j.progress
                   ELSE nullif(c.progress, 'null'::jsonb) END AS c_progress
),
failed_events AS (
    INSERT INTO awa.events (kind, occurred_at, job_id, payload)
    SELECT 'job.failed', t.now, g.id,
           jsonb_build_object('job_id', g.id, 'kind', g.kind, 'queue', g.queue,
                              'attempt', g.attempt, 'max_attempts', g.max_attempts,
                              'tags', to_jsonb(g.tags), 'error', g.error, 'rescued', false)
      FROM gone g, t
     WHERE g.new_state = 'failed'
)
INSERT INTO awa.jobs_done
SELECT h.*
  FROM gone g, t, awa.ring_state r,
       awa.history_row(
           g.job, r.current_slot, g.new_state, t.now,
           CASE WHEN g.error IS NULL THEN g.errors ELSE g.errors || jsonb_build_array(g.error) END,
           g.c_progress, NULL) h
RETURNING id;

-- name: reschedule_batch
-- Put running jobs whose run_lease matches back in line: retryable (a failed attempt) or
-- scheduled (a snooze, which gives the attempt back), due at run_at; straight to available
-- when already due. Appends error $5 when given and keeps the attempt's final progress $8 for
-- the next attempt. Returns (id, queue, state) applied.
WITH t AS (SELECT coalesce($7::timestamptz, now()) AS now),
locked AS (SELECT j.id FROM awa.jobs j
              JOIN unnest($1::bigint[], $2::bigint[]) AS l(id, lease)
                ON j.id = l.id AND j.run_lease = l.lease
             ORDER BY j.id FOR UPDATE OF j)
UPDATE awa.jobs j
   SET state = CASE WHEN c.run_at <= t.now THEN 'available'::awa.job_state ELSE c.new_state END,
       run_at = c.run_at,
       attempt = CASE WHEN c.give_back THEN j.attempt - 1 ELSE j.attempt END,
       errors = CASE WHEN c.error IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(c.error) END,
       progress = CASE WHEN c.progress IS NULL THEN j.progress
                       ELSE nullif(c.progress, 'null'::jsonb) END,
       heartbeat_at = NULL, deadline_at = NULL, claimed_by = NULL, cancel_requested = false
  FROM unnest($1::bigint[], $2::bigint[], $3::awa.job_state[], $4::timestamptz[], $5::jsonb[],
              $6::boolean[], $8::jsonb[]) AS c(id, lease, new_state, run_at, error, give_back,
                                               progress), t
 WHERE j.id = c.id AND j.run_lease = c.lease AND j.state IN ('running', 'waiting_external')
   AND NOT j.cancel_requested AND (SELECT count(*) FROM locked) >= 0
RETURNING j.id, j.queue, j.state, j.run_at;

-- name: finalize_cancel_requested
-- Attempts (id/lease pairs) an operator asked to cancel while they ran: whatever the
-- attempt's outcome other than success (a reported failure or retry, or a rescue), the job
-- ends cancelled with the operator's reason and the attempt's final progress $4. Only
-- attempts still in a state of $5 (NULL: running or waiting_external) are touched.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
locked AS (SELECT j.id FROM awa.jobs j
              JOIN unnest($1::bigint[], $2::bigint[]) AS l(id, lease)
                ON j.id = l.id AND j.run_lease = l.lease
             ORDER BY j.id FOR UPDATE OF j),
gone AS (
    DELETE FROM awa.jobs j
     USING unnest($1::bigint[], $2::bigint[], $4::jsonb[]) AS c(id, lease, progress)
     WHERE j.id = c.id AND j.run_lease = c.lease AND (SELECT count(*) FROM locked) >= 0
       AND j.state = ANY (coalesce($5::awa.job_state[], '{running,waiting_external}'))
       AND j.cancel_requested
    RETURNING j AS job, j.*,
              CASE WHEN c.progress IS NULL THEN j.progress
                   ELSE nullif(c.progress, 'null'::jsonb) END AS c_progress
)
INSERT INTO awa.jobs_done
SELECT h.*
  FROM gone g, t, awa.ring_state r,
       awa.history_row(
           g.job, r.current_slot, 'cancelled', t.now,
           g.errors || jsonb_build_array(jsonb_build_object(
               'at', t.now, 'attempt', g.attempt, 'kind', 'cancelled',
               'message', coalesce(g.cancel_reason, 'cancelled by operator while running'))),
           g.c_progress, NULL) h
RETURNING id;

-- name: heartbeat
-- One statement per runtime per interval: refresh heartbeat_at and progress of the running
-- jobs it holds (progress $3: see the convention at the top). Returns the ids the runtime
-- must stop: lost (lease no longer matches, or no longer running) or asked to cancel.
WITH t AS (SELECT coalesce($4::timestamptz, now()) AS now),
locked AS (SELECT j.id FROM awa.jobs j
              JOIN unnest($1::bigint[], $2::bigint[]) AS l(id, lease)
                ON j.id = l.id AND j.run_lease = l.lease
             ORDER BY j.id FOR UPDATE OF j),
beat AS (
    UPDATE awa.jobs j
       SET heartbeat_at = t.now,
           progress = CASE WHEN h.progress IS NULL THEN j.progress
                           ELSE nullif(h.progress, 'null'::jsonb) END
      FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[]) AS h(id, lease, progress), t
     WHERE j.id = h.id AND j.run_lease = h.lease AND j.state = 'running'
       AND (SELECT count(*) FROM locked) >= 0
    RETURNING j.id, j.cancel_requested, j.cancel_reason
)
SELECT h.id, (b.id IS NULL) AS lost, b.cancel_reason
  FROM unnest($1::bigint[]) AS h(id)
  LEFT JOIN beat b ON b.id = h.id
 WHERE b.id IS NULL OR b.cancel_requested;

-- name: drop_orphan_unique_key
-- Release a unique key whose job no longer exists (its history was pruned).
DELETE FROM awa.job_unique u
 WHERE u.unique_key = $1
   AND NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.id = u.job_id)
   AND NOT EXISTS (SELECT 1 FROM awa.jobs_done d WHERE d.id = u.job_id);
