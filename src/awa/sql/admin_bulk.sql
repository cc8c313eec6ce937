-- Operator actions over many jobs at once (retry, cancel, discard by filter; ADR 032).
-- The filter's parameters are always $1..$6: state, queue, kind, tag, finalized in [$5, $6)
-- (NULL = any), as in admin.sql's list_jobs. Each batch statement takes the batch's ids as
-- $1 and re-checks the state it may act on, so a job that moved meanwhile is left alone.

-- name: bulk_custom_plans
-- Plan this transaction's statements for their actual parameters (see force_custom_plans).
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: count_jobs
-- How many jobs match the filter and are in one of states $7.
SELECT count(*) FROM awa.all_jobs
 WHERE ($1::awa.job_state IS NULL OR state = $1)
   AND ($2::text IS NULL OR queue = $2)
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::text IS NULL OR (tags @> ARRAY[$4::text] AND tags <> '{}'))
   AND ($5::timestamptz IS NULL OR finalized_at >= $5)
   AND ($6::timestamptz IS NULL OR finalized_at < $6)
   AND ($5::timestamptz IS NULL AND $6::timestamptz IS NULL
        OR state IN ('completed', 'failed', 'cancelled'))
   AND state = ANY ($7::awa.job_state[]);

-- name: bulk_job_ids
-- The next batch: ids of jobs matching the filter in states $7, below id $8 (NULL: from
-- the newest), newest first, at most $9.
SELECT id FROM awa.all_jobs
 WHERE ($1::awa.job_state IS NULL OR state = $1)
   AND ($2::text IS NULL OR queue = $2)
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::text IS NULL OR (tags @> ARRAY[$4::text] AND tags <> '{}'))
   AND ($5::timestamptz IS NULL OR finalized_at >= $5)
   AND ($6::timestamptz IS NULL OR finalized_at < $6)
   AND ($5::timestamptz IS NULL AND $6::timestamptz IS NULL
        OR state IN ('completed', 'failed', 'cancelled'))
   AND state = ANY ($7::awa.job_state[])
   AND ($8::bigint IS NULL OR id < $8)
 ORDER BY id DESC
 LIMIT $9;

-- name: discard_jobs
-- Delete the jobs $1 that are not running, live or finished, and free any unique key
-- they still hold; the ids deleted.
WITH live AS (
    DELETE FROM awa.jobs WHERE id = ANY ($1::bigint[]) AND state <> 'running' RETURNING id
),
done AS (
    DELETE FROM awa.jobs_done WHERE id = ANY ($1::bigint[]) RETURNING id
),
gone AS (
    SELECT id FROM live UNION ALL SELECT id FROM done
),
keys AS (
    DELETE FROM awa.job_unique u USING gone WHERE u.job_id = gone.id RETURNING u.job_id
)
SELECT id FROM gone;

-- name: bulk_retry_deferred
-- Make the scheduled or retryable jobs among $1 available now ($2).
UPDATE awa.jobs SET state = 'available', run_at = coalesce($2::timestamptz, now())
 WHERE id = ANY ($1::bigint[]) AND state IN ('scheduled', 'retryable')
RETURNING id, queue;

-- name: bulk_retry_finished
-- Bring the finished jobs among $1 back as available now ($2), attempts reset, history
-- rows removed. Jobs with a unique key only when $3: a batch leaves them out (each goes
-- one by one, its key retaken in its own transaction); a single retry ($1 one id) takes
-- them and retakes the key in the same transaction.
WITH t AS (SELECT coalesce($2::timestamptz, now()) AS now),
gone AS (
    DELETE FROM awa.jobs_done d
     WHERE d.id = ANY ($1::bigint[]) AND ($3::boolean OR d.unique_key IS NULL)
    RETURNING d.*
)
INSERT INTO awa.jobs (id, kind, queue, args, state, priority, original_priority, attempt,
                      max_attempts, run_at, created_at, timeout_s, tags, metadata, errors,
                      progress, unique_key, unique_states, run_lease)
SELECT g.id, g.kind, g.queue, g.args, 'available', g.original_priority, g.original_priority, 0,
       g.max_attempts, t.now, g.created_at, g.timeout_s, g.tags, g.metadata, g.errors, NULL,
       g.unique_key, g.unique_states, g.run_lease
  FROM gone g, t
RETURNING id, queue;

-- name: bulk_keyed_finished
-- The finished jobs among $1 that have a unique key (retried one by one).
SELECT id FROM awa.jobs_done WHERE id = ANY ($1::bigint[]) AND unique_key IS NOT NULL;

-- name: bulk_cancel_waiting
-- Cancel the jobs among $1 that are not running: to history as cancelled with reason $2.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
gone AS (
    DELETE FROM awa.jobs j
     WHERE j.id = ANY ($1::bigint[])
       AND j.state IN ('scheduled', 'available', 'retryable', 'waiting_external')
    RETURNING j AS job, j.*
)
INSERT INTO awa.jobs_done
SELECT h.*
  FROM gone g, t, awa.ring_state r,
       awa.history_row(
           g.job, r.current_slot, 'cancelled', t.now,
           g.errors || jsonb_build_array(jsonb_build_object('at', t.now, 'attempt', g.attempt,
               'kind', 'cancelled', 'message', $2::text)),
           g.progress, NULL) h
RETURNING id;

-- name: bulk_request_cancel
-- Ask the runtimes holding the running jobs among $1 to stop them (reason $2).
UPDATE awa.jobs SET cancel_requested = true, cancel_reason = $2
 WHERE id = ANY ($1::bigint[]) AND state = 'running'
RETURNING id;
