-- The terminal-history ring: one rotation pass (awa.store.ring), in one transaction.

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
-- $4 cancelled, in seconds). One probe per state of jobs_done_finalized_idx (state,
-- finalized_at) in the slot's partition, not a read of the partition (issue 19).
SELECT NOT (
    EXISTS (SELECT 1 FROM awa.jobs_done d
             WHERE d.slot = $1 AND d.state = 'completed'
               AND d.finalized_at >= coalesce($5::timestamptz, now())
                                     - make_interval(secs => $2::float8))
    OR EXISTS (SELECT 1 FROM awa.jobs_done d
                WHERE d.slot = $1 AND d.state = 'failed'
                  AND d.finalized_at >= coalesce($5::timestamptz, now())
                                        - make_interval(secs => $3::float8))
    OR EXISTS (SELECT 1 FROM awa.jobs_done d
                WHERE d.slot = $1 AND d.state = 'cancelled'
                  AND d.finalized_at >= coalesce($5::timestamptz, now())
                                        - make_interval(secs => $4::float8)));

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

-- name: carry_slot
-- Copy the rows of ring slot $1 still within their state's retention ($3 completed, $4
-- failed, $5 cancelled, in seconds) into the current slot $2, so that slot $1 can be
-- TRUNCATEd once the bulk of it (the shortest-lived rows) has expired (ADR 035). Reads
-- jobs_done_finalized_idx (state, finalized_at) of the slot's partition: O(rows carried).
INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority, original_priority,
        attempt, max_attempts, run_at, created_at, attempted_at, finalized_at, timeout_s, tags,
        metadata, errors, progress, result, unique_key, unique_states, run_lease, claimed_by)
SELECT $2::smallint, d.id, d.kind, d.queue, d.args, d.state, d.priority, d.original_priority,
       d.attempt, d.max_attempts, d.run_at, d.created_at, d.attempted_at, d.finalized_at,
       d.timeout_s, d.tags, d.metadata, d.errors, d.progress, d.result, d.unique_key,
       d.unique_states, d.run_lease, d.claimed_by
  FROM awa.jobs_done d,
       (VALUES ('completed'::awa.job_state, $3::float8), ('failed', $4::float8),
               ('cancelled', $5::float8)) AS r (state, keep)
 WHERE d.slot = $1 AND d.state = r.state
   AND d.finalized_at >= coalesce($6::timestamptz, now()) - make_interval(secs => r.keep);
