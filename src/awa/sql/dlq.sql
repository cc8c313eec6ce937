-- The dead-letter hold (ADR 009): policy publication, the move out of the history ring,
-- retention, and the operator's list / show / retry / purge. None is on a hot path.

-- name: dlq_upsert_policies
-- Publish declared policies ($1: jsonb array of {queue, retention_s}) as seen now by $2; a
-- policy declared again comes back from orphaned. An unchanged policy seen less than 60 s
-- ago is not rewritten (publication runs every few seconds; orphaning waits minutes).
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
d AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(queue text, retention_s float8))
INSERT INTO awa.dead_letter_policies AS p (queue, retention_s, declared_at, declared_seen_at,
                                           synced_by)
SELECT d.queue, d.retention_s, t.now, t.now, $2 FROM d, t
ON CONFLICT (queue) DO UPDATE
   SET retention_s = EXCLUDED.retention_s, declared_seen_at = EXCLUDED.declared_seen_at,
       synced_by = EXCLUDED.synced_by, orphaned_at = NULL
 WHERE p.retention_s IS DISTINCT FROM EXCLUDED.retention_s
    OR p.orphaned_at IS NOT NULL
    OR p.declared_seen_at < EXCLUDED.declared_seen_at - interval '60 seconds';

-- name: dlq_orphan_policies
-- Mark orphaned the policies not declared by the syncing process ($1: its queues) and not
-- re-declared by anyone for $2 seconds (a rolling deploy may still run older code).
UPDATE awa.dead_letter_policies
   SET orphaned_at = coalesce($3::timestamptz, now())
 WHERE orphaned_at IS NULL
   AND NOT (queue = ANY ($1::text[]))
   AND declared_seen_at < coalesce($3::timestamptz, now()) - make_interval(secs => $2)
RETURNING queue;

-- name: dlq_list_policies
-- Every stored policy with the number of letters it holds (pending and already retried).
SELECT p.queue, p.retention_s, p.declared_at, p.declared_seen_at, p.synced_by, p.orphaned_at,
       count(d.id) FILTER (WHERE d.retried_at IS NULL) AS pending,
       count(d.id) FILTER (WHERE d.retried_at IS NOT NULL) AS retried
  FROM awa.dead_letter_policies p
  LEFT JOIN awa.dead_letters d ON d.queue = p.queue
 GROUP BY p.queue
 ORDER BY p.queue;

-- name: dlq_move
-- Move up to $1 failed jobs of queues with an active policy from the history ring to the
-- hold, in this one statement: a crash leaves each job in exactly one of the two tables.
-- Rows another transaction holds (an operator's retry) are skipped, not waited for.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
victims AS (
    SELECT d.slot, d.id FROM awa.jobs_done d
     WHERE d.state = 'failed'
       AND d.queue = ANY (ARRAY(SELECT queue FROM awa.dead_letter_policies
                                 WHERE orphaned_at IS NULL))
     ORDER BY d.queue
     LIMIT $1
       FOR UPDATE SKIP LOCKED
),
moved AS (
    DELETE FROM awa.jobs_done d USING victims v
     WHERE d.slot = v.slot AND d.id = v.id AND d.state = 'failed'
    RETURNING d.*
)
INSERT INTO awa.dead_letters (id, kind, queue, args, priority, original_priority, attempt,
                              max_attempts, run_at, created_at, attempted_at, finalized_at,
                              timeout_s, tags, metadata, errors, progress, unique_key,
                              unique_states, run_lease, claimed_by, reason, dead_at)
SELECT m.id, m.kind, m.queue, m.args, m.priority, m.original_priority, m.attempt,
       m.max_attempts, m.run_at, m.created_at, m.attempted_at, m.finalized_at, m.timeout_s,
       m.tags, m.metadata, m.errors, m.progress, m.unique_key, m.unique_states, m.run_lease,
       m.claimed_by,
       coalesce(nullif(m.errors -> -1 ->> 'message', ''), 'failed without an error record'),
       t.now
  FROM moved m, t
RETURNING id, queue;

-- name: dlq_expire
-- Delete up to $1 dead letters held longer than their queue's retention (policies with a
-- retention only; an orphaned policy's retention still applies).
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
victims AS (
    SELECT x.id
      FROM awa.dead_letter_policies p, t
     CROSS JOIN LATERAL (
           SELECT d.id FROM awa.dead_letters d
            WHERE d.queue = p.queue
              AND d.dead_at < t.now - make_interval(secs => p.retention_s)
            LIMIT $1) x
     WHERE p.retention_s IS NOT NULL
     LIMIT $1
)
DELETE FROM awa.dead_letters d USING victims v WHERE d.id = v.id;

-- name: dlq_list
-- Dead letters filtered by queue/kind (NULL = any), pending only unless $3, newest first,
-- at most $4, ids below $5.
SELECT * FROM awa.dead_letters
 WHERE ($1::text IS NULL OR queue = $1)
   AND ($2::text IS NULL OR kind = $2)
   AND ($3::boolean OR retried_at IS NULL)
   AND ($5::bigint IS NULL OR id < $5)
 ORDER BY id DESC
 LIMIT $4;

-- name: dlq_get
-- One dead letter by id (the job's id).
SELECT * FROM awa.dead_letters WHERE id = $1;

-- name: dlq_lock
-- Lock one dead letter for a retry (the caller's transaction); returns what the retry needs.
SELECT id, queue, unique_key, unique_states::text[] AS unique_states, retried_at,
       retried_job_id
  FROM awa.dead_letters WHERE id = $1
   FOR UPDATE;

-- name: dlq_retry
-- Insert a fresh job from pending dead letter $1 (new id $2, or the next one when NULL):
-- available now, attempt 0, no error history, original priority, same kind/queue/args/
-- tags/timeout/unique key, metadata plus {"awa.dead_letter": {"retried_from": id}}; mark the
-- letter retried; wake the queue at commit. No row when the letter is gone or was retried.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
dl AS (SELECT * FROM awa.dead_letters WHERE id = $1 AND retried_at IS NULL),
ins AS (
    INSERT INTO awa.jobs (id, kind, queue, args, state, priority, original_priority, max_attempts,
                          run_at, created_at, timeout_s, tags, metadata, unique_key, unique_states)
    SELECT coalesce($2::bigint, nextval('awa.job_id_seq')), dl.kind, dl.queue, dl.args,
           'available', dl.original_priority, dl.original_priority, dl.max_attempts, t.now, t.now,
           dl.timeout_s, dl.tags,
           dl.metadata || jsonb_build_object('awa.dead_letter', jsonb_build_object(
               'retried_from', dl.id, 'retried_at', t.now)),
           dl.unique_key, dl.unique_states
      FROM dl, t
    RETURNING id, queue
),
marked AS (
    UPDATE awa.dead_letters d SET retried_at = t.now, retried_job_id = ins.id
      FROM ins, t
     WHERE d.id = $1
    RETURNING d.id
)
SELECT ins.id, ins.queue
  FROM ins
 CROSS JOIN LATERAL (SELECT pg_notify('awa_jobs', ins.queue)) AS notified;

-- name: dlq_pending_ids
-- Ids of up to $2 pending (never retried) dead letters of queue $1 (NULL = any), oldest first.
SELECT id FROM awa.dead_letters
 WHERE ($1::text IS NULL OR queue = $1) AND retried_at IS NULL
 ORDER BY id
 LIMIT $2;

-- name: dlq_purge_ids
-- Delete the dead letters with these ids; returns the ids deleted.
DELETE FROM awa.dead_letters WHERE id = ANY ($1::bigint[]) RETURNING id;

-- name: dlq_purge_batch
-- Delete up to $3 dead letters of queue $1 (NULL = any queue), only retried ones when $2.
WITH victims AS (
    SELECT id FROM awa.dead_letters
     WHERE ($1::text IS NULL OR queue = $1)
       AND (NOT $2::boolean OR retried_at IS NOT NULL)
     LIMIT $3
)
DELETE FROM awa.dead_letters d USING victims v WHERE d.id = v.id;
