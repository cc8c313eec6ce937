-- Cron schedules: sync from code, evaluation by the leader, operator views.

-- name: cron_upsert
-- Publish declared schedules ($1: jsonb array of declarations). New rows start evaluating
-- at $3 (no fire before the schedule existed); a schedule coming back from orphaned or
-- paused restarts at $3 too, so the time it was off is not caught up. Wakes the leader's
-- cron_evaluate (payload 'cron' on awa_due) so a new schedule's first fire is on time.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
d AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
        name text, expression text, timezone text, kind text, queue text, args jsonb,
        priority smallint, max_attempts integer, misfire text, catchup_window_s float8,
        max_catchup integer, overlap text, paused boolean, miss_tolerance_s float8,
        tags text[], metadata jsonb, fingerprint text)
),
up AS (
INSERT INTO awa.cron_schedules AS s (name, expression, timezone, kind, queue, args, priority,
        max_attempts, misfire, catchup_window_s, max_catchup, overlap, paused,
        miss_tolerance_s, tags, metadata, fingerprint, declared_at, declared_seen_at,
        synced_by, evaluated_through)
SELECT d.name, d.expression, d.timezone, d.kind, d.queue, coalesce(d.args, 'null'::jsonb),
       d.priority, d.max_attempts, d.misfire, d.catchup_window_s, d.max_catchup, d.overlap,
       d.paused, d.miss_tolerance_s, coalesce(d.tags, '{}'), coalesce(d.metadata, '{}'),
       d.fingerprint, t.now, t.now, $2, t.now
  FROM d, t
ON CONFLICT (name) DO UPDATE
   SET expression = EXCLUDED.expression, timezone = EXCLUDED.timezone, kind = EXCLUDED.kind,
       queue = EXCLUDED.queue, args = EXCLUDED.args, priority = EXCLUDED.priority,
       max_attempts = EXCLUDED.max_attempts, misfire = EXCLUDED.misfire,
       catchup_window_s = EXCLUDED.catchup_window_s, max_catchup = EXCLUDED.max_catchup,
       overlap = EXCLUDED.overlap, paused = EXCLUDED.paused,
       miss_tolerance_s = EXCLUDED.miss_tolerance_s, tags = EXCLUDED.tags,
       metadata = EXCLUDED.metadata, fingerprint = EXCLUDED.fingerprint,
       declared_seen_at = EXCLUDED.declared_seen_at, synced_by = EXCLUDED.synced_by,
       orphaned_at = NULL,
       evaluated_through = CASE
           WHEN s.orphaned_at IS NOT NULL OR (s.paused AND NOT EXCLUDED.paused)
           THEN greatest(s.evaluated_through, EXCLUDED.evaluated_through)
           ELSE s.evaluated_through END
RETURNING 1
)
SELECT pg_notify('awa_due', 'cron') FROM (SELECT count(*) AS n FROM up) c WHERE c.n > 0;

-- name: cron_orphan
-- Mark orphaned the schedules not declared by the syncing process ($1: its names) and not
-- re-declared by anyone for $2 seconds (a rolling deploy may still run older code).
UPDATE awa.cron_schedules
   SET orphaned_at = coalesce($3::timestamptz, now())
 WHERE orphaned_at IS NULL
   AND NOT (name = ANY($1::text[]))
   AND declared_seen_at < coalesce($3::timestamptz, now()) - make_interval(secs => $2)
RETURNING name;

-- name: cron_refresh_success
-- Record the scheduled instant of each schedule's last fire whose job has completed
-- (terminal history is found by id through jobs_done_id_idx).
UPDATE awa.cron_schedules s
   SET last_success_at = (d.metadata -> 'awa.cron' ->> 'scheduled_at')::timestamptz,
       last_success_job_id = d.id
  FROM awa.jobs_done d
 WHERE d.id = s.last_fired_job_id
   AND d.state = 'completed'
   AND s.last_success_job_id IS DISTINCT FROM s.last_fired_job_id;

-- name: cron_active
-- Schedules to evaluate, with the state of the previous fire's job if it is still live.
SELECT s.*, j.state::text AS previous_state
  FROM awa.cron_schedules s
  LEFT JOIN awa.jobs j ON j.id = s.last_fired_job_id
 WHERE s.orphaned_at IS NULL AND NOT s.paused AND NOT s.operator_paused
 ORDER BY s.name;

-- name: cron_advance
-- Compare-and-set of the evaluation mark: only the evaluator that read $9 advances it (the
-- caller enqueues the fires, and writes their cron.fired events, in the same transaction,
-- only when a row comes back). A schedule paused or orphaned since it was read does not
-- match, so nothing is enqueued for it.
UPDATE awa.cron_schedules
   SET evaluated_through = $2,
       last_fire_at = coalesce($3, last_fire_at),
       fired_total = fired_total + $4,
       last_enqueued_at = CASE WHEN $4 > 0 THEN coalesce($10::timestamptz, now())
                               ELSE last_enqueued_at END,
       missed_total = missed_total + $5,
       last_missed_at = coalesce($6, last_missed_at),
       overlap_skipped_total = overlap_skipped_total + $7,
       next_fire_at = $8
 WHERE name = $1 AND evaluated_through = $9 AND orphaned_at IS NULL
   AND NOT paused AND NOT operator_paused
RETURNING name;

-- name: cron_set_last_job
-- Remember the job enqueued by the latest fire (for overlap and success tracking).
UPDATE awa.cron_schedules SET last_fired_job_id = $2 WHERE name = $1;

-- name: cron_mark_alerted
-- Claim the right to report instant $2 of schedule $1 as missed (once, across leaders), and
-- in the same statement write the cron.missed event to the outbox.
WITH claimed AS (
    UPDATE awa.cron_schedules
       SET miss_alerted_for = $2
     WHERE name = $1 AND (miss_alerted_for IS NULL OR miss_alerted_for < $2)
    RETURNING name, last_success_at, last_fire_at, misfire, miss_tolerance_s
),
missed_event AS (
    INSERT INTO awa.events (kind, occurred_at, schedule, payload)
    SELECT 'cron.missed', coalesce($3::timestamptz, now()), c.name,
           jsonb_build_object('schedule', c.name, 'scheduled_at', $2::timestamptz,
                              'last_success_at', c.last_success_at,
                              'last_fire_at', c.last_fire_at, 'misfire', c.misfire,
                              'miss_tolerance_s', c.miss_tolerance_s)
      FROM claimed c
)
SELECT name FROM claimed;

-- name: cron_list
-- Every schedule with its last success, last fire and next fire, by name.
SELECT name, expression, timezone, kind, queue, misfire, overlap, paused, operator_paused,
       orphaned_at, last_fire_at, last_success_at, next_fire_at, evaluated_through,
       fired_total, missed_total, last_missed_at, overlap_skipped_total, miss_alerted_for,
       declared_at, synced_by
  FROM awa.cron_schedules
 ORDER BY name;

-- name: cron_set_operator_paused
-- Pause or resume a schedule by hand; resuming restarts evaluation at $3 (no catch-up of
-- the paused time).
UPDATE awa.cron_schedules
   SET operator_paused = $2,
       evaluated_through = CASE WHEN operator_paused AND NOT $2
                                THEN greatest(evaluated_through, coalesce($3::timestamptz, now()))
                                ELSE evaluated_through END
 WHERE name = $1
RETURNING name, operator_paused;
-- name: event_cron_fired
-- One cron.fired event per job just enqueued by schedule $1 (ids $2), in the caller's
-- transaction; the scheduled instant comes from the job's awa.cron metadata.
INSERT INTO awa.events (kind, occurred_at, job_id, schedule, payload)
SELECT 'cron.fired', coalesce($3::timestamptz, now()), j.id, $1::text,
       jsonb_build_object('schedule', $1::text,
                          'scheduled_at', j.metadata -> 'awa.cron' -> 'scheduled_at',
                          'job_id', j.id, 'kind', j.kind, 'queue', j.queue)
  FROM awa.jobs j
 WHERE j.id = ANY ($2::bigint[])
 ORDER BY j.id;

-- name: cron_lock_for_fire
-- Lock schedule $1 for an operator's "run now" (in the caller's transaction, which enqueues
-- the job and records the fire), with the instant the fire stands for ($2, else now()).
SELECT s.*, coalesce($2::timestamptz, now()) AS fired_at
  FROM awa.cron_schedules s
 WHERE s.name = $1
   FOR UPDATE;

-- name: cron_record_manual_fire
-- Record an operator's "run now" of schedule $1 (job $2, instant $3) like a fire: counted in
-- fired_total, last fire and enqueue time, and the job the overlap policy and success
-- tracking follow. The evaluation mark is left alone: scheduled fires go on as before.
UPDATE awa.cron_schedules
   SET fired_total = fired_total + 1,
       last_fire_at = $3,
       last_enqueued_at = $3,
       last_fired_job_id = $2
 WHERE name = $1;
