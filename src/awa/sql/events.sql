-- The event outbox: fan-out to sinks, delivery claims and results, sink health, retention,
-- operator views. Producers write events inside their own statements (jobs.sql,
-- maintenance.sql, cron.sql); only the cron fire event needs a statement of its own, run in
-- the transaction that enqueues the fires.

-- name: event_register_sinks
-- Register the sinks this leader delivers to ($1: jsonb array of {"sink", "kinds"}, kinds
-- null = all): new ones are added, known ones get this subscription and seen_at.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now)
INSERT INTO awa.event_sinks AS s (name, kinds, registered_at, seen_at)
SELECT l.sink, l.kinds, t.now, t.now
  FROM jsonb_to_recordset($1::jsonb) AS l(sink text, kinds text[]), t
ON CONFLICT (name) DO UPDATE SET kinds = EXCLUDED.kinds, seen_at = EXCLUDED.seen_at;

-- name: event_fan_out
-- Fan out up to $2 events not yet fanned out, oldest first: one pending delivery per sink
-- whose subscription matches. Sinks: this leader's ($1: jsonb array of {"sink", "kinds"},
-- kinds null = all) and every other registered one. Returns (events, deliveries created).
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
own AS (
    SELECT l.sink, l.kinds FROM jsonb_to_recordset($1::jsonb) AS l(sink text, kinds text[])
),
sinks AS (
    SELECT sink, kinds FROM own
    UNION ALL
    SELECT r.name, r.kinds FROM awa.event_sinks r
     WHERE NOT EXISTS (SELECT 1 FROM own WHERE own.sink = r.name)
),
picked AS (
    SELECT id FROM awa.events
     WHERE fanned_out_at IS NULL
     ORDER BY id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
),
marked AS (
    UPDATE awa.events e SET fanned_out_at = t.now
      FROM picked, t
     WHERE e.id = picked.id
    RETURNING e.id, e.kind
),
created AS (
    INSERT INTO awa.event_deliveries (event_id, sink, created_at, next_attempt_at)
    SELECT m.id, s.sink, t.now, t.now
      FROM marked m, sinks s, t
     WHERE s.kinds IS NULL OR m.kind = ANY (s.kinds)
    ON CONFLICT (event_id, sink) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked) AS events, (SELECT count(*) FROM created) AS deliveries;

-- name: event_claim
-- Claim up to $2 due pending deliveries of sink $1, oldest due first, unless the sink is
-- backing off. A claim bumps the lease and hides the delivery for $3 seconds (a holder that
-- dies mid-run loses nothing: the delivery is due again when the claim expires). Returns
-- the event with the delivery's counters, the new lease and the due time it had.
WITH t AS (SELECT coalesce($4::timestamptz, now()) AS now),
picked AS (
    SELECT d.event_id, d.next_attempt_at AS due_at
      FROM awa.event_deliveries d, t
     WHERE d.sink = $1 AND d.delivered_at IS NULL AND d.parked_at IS NULL
       AND d.next_attempt_at <= t.now
       AND NOT EXISTS (SELECT 1 FROM awa.event_sinks s
                        WHERE s.name = $1 AND s.retry_at > t.now)
     ORDER BY d.next_attempt_at, d.event_id
     LIMIT $2
       FOR UPDATE OF d SKIP LOCKED
)
UPDATE awa.event_deliveries d
   SET lease = d.lease + 1, next_attempt_at = t.now + make_interval(secs => $3)
  FROM picked, t, awa.events e
 WHERE d.sink = $1 AND d.event_id = picked.event_id AND e.id = d.event_id
RETURNING d.event_id, d.lease, d.attempts, d.rejections, picked.due_at,
          e.kind, e.occurred_at, e.payload;

-- name: event_record
-- Apply one run's results for sink $1, each only under the lease it was claimed with ($3):
-- outcome ($4) 'delivered'; 'failed' (an attempt that did not land: due again at now + $5
-- seconds; $7 = the sink refused this event, which parks it at its $9th refusal);
-- 'deferred' (not attempted this run: due again at $6, its due time before the claim).
-- $8: the error text of failed attempts. Returns what was applied.
WITH t AS (SELECT coalesce($10::timestamptz, now()) AS now),
r AS (
    SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::float8[],
                         $6::timestamptz[], $7::boolean[], $8::text[])
           AS r(event_id, lease, outcome, delay_s, due_at, rejected, error)
)
UPDATE awa.event_deliveries d
   SET delivered_at = CASE WHEN r.outcome = 'delivered' THEN t.now END,
       attempts = d.attempts + CASE WHEN r.outcome = 'deferred' THEN 0 ELSE 1 END,
       rejections = d.rejections + CASE WHEN r.rejected THEN 1 ELSE 0 END,
       last_attempt_at = CASE WHEN r.outcome = 'deferred' THEN d.last_attempt_at ELSE t.now END,
       last_error = CASE WHEN r.outcome = 'failed' THEN r.error ELSE d.last_error END,
       next_attempt_at = CASE WHEN r.outcome = 'deferred' THEN r.due_at
                              WHEN r.outcome = 'failed'
                              THEN t.now + make_interval(secs => r.delay_s)
                              ELSE d.next_attempt_at END,
       parked_at = CASE WHEN r.outcome = 'failed' AND r.rejected
                         AND d.rejections + 1 >= $9::integer THEN t.now END
  FROM r, t
 WHERE d.sink = $1 AND d.event_id = r.event_id AND d.lease = r.lease
   AND d.delivered_at IS NULL AND d.parked_at IS NULL
RETURNING d.event_id, r.outcome, d.parked_at IS NOT NULL AS parked, d.attempts, d.last_error;

-- name: event_sink_report
-- Record one run's outcome for sink $1: $2 delivered, $3 failed attempts, $4 parked; $5 =
-- the sink was unavailable (its failure streak grows and it rests until now + $6 s; error
-- $7), otherwise a run that delivered something ends the streak. Returns the streak before
-- and after, since when the sink has been failing, and until when it rests (no row: the
-- sink was forgotten meanwhile).
WITH t AS (SELECT coalesce($8::timestamptz, now()) AS now),
before AS (SELECT failures FROM awa.event_sinks WHERE name = $1::text)
UPDATE awa.event_sinks s
   SET failures = CASE WHEN $5::boolean THEN s.failures + 1
                       WHEN $2::integer > 0 THEN 0 ELSE s.failures END,
       retry_at = CASE WHEN $5::boolean THEN t.now + make_interval(secs => $6::float8)
                       WHEN $2::integer > 0 THEN NULL ELSE s.retry_at END,
       failing_since = CASE WHEN $5::boolean THEN coalesce(s.failing_since, t.now)
                            WHEN $2::integer > 0 THEN NULL ELSE s.failing_since END,
       last_error = coalesce($7::text, s.last_error),
       last_failure_at = CASE WHEN $3::integer > 0 THEN t.now ELSE s.last_failure_at END,
       last_success_at = CASE WHEN $2::integer > 0 THEN t.now ELSE s.last_success_at END,
       delivered_total = s.delivered_total + $2::integer,
       failed_total = s.failed_total + $3::integer,
       parked_total = s.parked_total + $4::integer
  FROM t
 WHERE s.name = $1::text
RETURNING coalesce((SELECT failures FROM before), 0) AS failures_before, s.failures,
          s.failing_since, s.retry_at;

-- name: event_sink_failures
-- The current failure streak of sink $1 (0 when it has none or is unknown).
SELECT coalesce((SELECT failures FROM awa.event_sinks WHERE name = $1), 0);

-- name: event_expire
-- Delete up to $2 events older than $1 seconds that are fanned out and have no pending or
-- parked delivery (their delivered deliveries go with them). Walks the primary key from the
-- oldest id (ids grow with time), so it reads little beyond what it deletes.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
victims AS (
    SELECT e.id FROM awa.events e, t
     WHERE e.occurred_at < t.now - make_interval(secs => $1)
       AND e.fanned_out_at IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM awa.event_deliveries d
                        WHERE d.event_id = e.id AND d.delivered_at IS NULL)
     ORDER BY e.id
     LIMIT $2
       FOR UPDATE OF e SKIP LOCKED
)
DELETE FROM awa.events e USING victims WHERE e.id = victims.id;

-- name: event_unknown_sinks
-- Sinks with outstanding (pending or parked) deliveries that are not among $1 (the sinks
-- this process delivers to): they wait for a leader configured with the sink, or for an
-- operator to forget it.
SELECT d.sink, count(*) AS outstanding, min(d.created_at) AS oldest
  FROM awa.event_deliveries d
 WHERE d.delivered_at IS NULL AND NOT (d.sink = ANY ($1::text[]))
 GROUP BY d.sink
 ORDER BY d.sink;

-- name: event_backlog
-- Outstanding (pending or parked) deliveries per sink, for the awa.outbox.backlog gauge;
-- registered sinks with none report 0.
SELECT s.sink, count(d.event_id) AS waiting
  FROM (SELECT name AS sink FROM awa.event_sinks
        UNION
        SELECT DISTINCT sink FROM awa.event_deliveries WHERE delivered_at IS NULL) s
  LEFT JOIN awa.event_deliveries d ON d.sink = s.sink AND d.delivered_at IS NULL
 GROUP BY s.sink
 ORDER BY s.sink;

-- name: event_list
-- Newest events first (before id $2 when given), optionally of kind $3, with each sink's
-- delivery state; at most $1.
SELECT e.id, e.kind, e.occurred_at, e.job_id, e.schedule, e.payload, e.fanned_out_at,
       coalesce(jsonb_agg(jsonb_build_object(
           'sink', d.sink, 'attempts', d.attempts, 'rejections', d.rejections,
           'next_attempt_at', d.next_attempt_at, 'last_error', d.last_error,
           'delivered_at', d.delivered_at, 'parked_at', d.parked_at) ORDER BY d.sink)
           FILTER (WHERE d.sink IS NOT NULL), '[]'::jsonb) AS deliveries
  FROM awa.events e
  LEFT JOIN awa.event_deliveries d ON d.event_id = e.id
 WHERE ($2::bigint IS NULL OR e.id < $2) AND ($3::text IS NULL OR e.kind = $3)
 GROUP BY e.id
 ORDER BY e.id DESC
 LIMIT $1;

-- name: event_sink_status
-- Per sink: subscription, health (streak, backoff, last error) and outstanding deliveries,
-- for the CLI (a sink with deliveries but no registration was forgotten mid-run).
WITH counts AS (
    SELECT sink,
           count(*) FILTER (WHERE parked_at IS NULL) AS pending,
           count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
           min(created_at) AS oldest_outstanding
      FROM awa.event_deliveries
     WHERE delivered_at IS NULL
     GROUP BY sink
)
SELECT coalesce(s.name, c.sink) AS sink, s.kinds, s.registered_at,
       coalesce(s.failures, 0) AS failures, s.retry_at,
       s.failing_since, s.last_error, s.last_failure_at, s.last_success_at,
       coalesce(s.delivered_total, 0) AS delivered_total,
       coalesce(s.failed_total, 0) AS failed_total,
       coalesce(s.parked_total, 0) AS parked_total, s.seen_at,
       coalesce(c.pending, 0) AS pending, coalesce(c.parked, 0) AS parked,
       c.oldest_outstanding
  FROM awa.event_sinks s
  FULL JOIN counts c ON c.sink = s.name
 ORDER BY 1;

-- name: event_flush
-- Operator: make the outstanding deliveries of sink $1 (all sinks when NULL) due now,
-- unparking parked ones (their refusal count restarts), and end the sink's backoff.
-- Returns the deliveries touched.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
sinks AS (
    UPDATE awa.event_sinks SET retry_at = NULL
     WHERE $1::text IS NULL OR name = $1
    RETURNING name
)
UPDATE awa.event_deliveries d
   SET parked_at = NULL, rejections = 0, next_attempt_at = t.now
  FROM t
 WHERE d.delivered_at IS NULL AND ($1::text IS NULL OR d.sink = $1)
   AND (d.parked_at IS NOT NULL OR d.next_attempt_at > t.now);

-- name: event_purge
-- Operator: delete the outstanding deliveries of sink $1 (all sinks when NULL): only the
-- parked ones unless $2. The events stay (for other sinks and listing) until retention.
DELETE FROM awa.event_deliveries d
 WHERE d.delivered_at IS NULL AND ($1::text IS NULL OR d.sink = $1)
   AND ($2::boolean OR d.parked_at IS NOT NULL);

-- name: event_forget_sink
-- Operator: forget sink $1 (a sink removed from the code): its registration and its
-- outstanding deliveries go, so fan-out no longer queues events for it. Returns the
-- deliveries dropped.
WITH registration AS (DELETE FROM awa.event_sinks WHERE name = $1)
DELETE FROM awa.event_deliveries WHERE sink = $1 AND delivered_at IS NULL;
