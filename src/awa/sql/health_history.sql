-- Per-branch maintenance health: the current row, its bounded history of samples, and the
-- interval the leader writes them at (ADR 033).

-- name: record_health
-- Upsert per-branch health rows (parallel arrays, one element per branch; max_lateness_s is
-- the worst lateness since the previous write, NULL when the branch did not run meanwhile),
-- store one sample per branch in its ring slot (sample_seq % $17, overwritten in place: the
-- history is bounded at $17 samples per branch with no pruning pass), and record the
-- writer's health interval $18 on the leader row. One statement, one round trip.
WITH t AS (SELECT coalesce($16::timestamptz, now()) AS now),
up AS (
    INSERT INTO awa.maintenance_health AS h (branch, lane, interval_s, last_started_at,
            last_finished_at, last_duration_s, last_lateness_s, runs, errors, overruns,
            delayed, rows_touched, last_error, max_lateness_s, leader_instance, updated_at,
            sample_seq)
    SELECT b.*, $15, t.now, 1
      FROM t, unnest($1::text[], $2::text[], $3::float8[], $4::timestamptz[],
                     $5::timestamptz[], $6::float8[], $7::float8[], $8::bigint[],
                     $9::bigint[], $10::bigint[], $11::boolean[], $12::bigint[], $13::text[],
                     $14::float8[]) AS b
    ON CONFLICT (branch) DO UPDATE
       SET lane = EXCLUDED.lane, interval_s = EXCLUDED.interval_s,
           last_started_at = EXCLUDED.last_started_at,
           last_finished_at = EXCLUDED.last_finished_at,
           last_duration_s = EXCLUDED.last_duration_s,
           last_lateness_s = EXCLUDED.last_lateness_s, max_lateness_s = EXCLUDED.max_lateness_s,
           runs = EXCLUDED.runs, errors = EXCLUDED.errors, overruns = EXCLUDED.overruns,
           delayed = EXCLUDED.delayed, rows_touched = EXCLUDED.rows_touched,
           last_error = EXCLUDED.last_error, leader_instance = EXCLUDED.leader_instance,
           updated_at = EXCLUDED.updated_at, sample_seq = h.sample_seq + 1
    RETURNING h.branch, h.lane, h.interval_s, h.last_lateness_s, h.max_lateness_s,
              h.last_duration_s, h.overruns, h.runs, h.delayed, h.leader_instance,
              h.updated_at, h.sample_seq
),
sampled AS (
    INSERT INTO awa.maintenance_health_samples AS s (branch, slot, seq, lane, sampled_at,
            interval_s, last_lateness_s, max_lateness_s, last_duration_s, overruns, runs,
            delayed, leader_instance)
    SELECT u.branch, (u.sample_seq % $17::int)::int, u.sample_seq, u.lane, u.updated_at,
           u.interval_s, u.last_lateness_s, u.max_lateness_s, u.last_duration_s, u.overruns,
           u.runs, u.delayed, u.leader_instance
      FROM up u
    ON CONFLICT (branch, slot) DO UPDATE
       SET seq = EXCLUDED.seq, lane = EXCLUDED.lane, sampled_at = EXCLUDED.sampled_at,
           interval_s = EXCLUDED.interval_s, last_lateness_s = EXCLUDED.last_lateness_s,
           max_lateness_s = EXCLUDED.max_lateness_s,
           last_duration_s = EXCLUDED.last_duration_s, overruns = EXCLUDED.overruns,
           runs = EXCLUDED.runs, delayed = EXCLUDED.delayed,
           leader_instance = EXCLUDED.leader_instance
    RETURNING 1
),
paced AS (
    UPDATE awa.maintenance_leader SET health_interval_s = $18::float8
     WHERE instance_id = $15 AND health_interval_s IS DISTINCT FROM $18::float8
    RETURNING 1
)
SELECT (SELECT count(*) FROM sampled) AS sampled, (SELECT count(*) FROM paced) AS paced;

-- name: health_samples
-- The stored samples of every branch (or of branch $1), oldest first, with the overruns
-- and runs each sample added (NULL for a branch's oldest stored sample; a new leader's
-- counters start again at 0, so after a change of leader the sample's own count). Reads the
-- whole ring at most: branches x ring size rows.
SELECT branch, lane, seq, sampled_at, interval_s, last_lateness_s, max_lateness_s,
       last_duration_s, overruns AS overruns_total, runs AS runs_total, delayed,
       leader_instance,
       CASE WHEN lag(seq) OVER w IS NULL THEN NULL
            WHEN lag(leader_instance) OVER w = leader_instance AND overruns >= lag(overruns) OVER w
            THEN overruns - lag(overruns) OVER w
            ELSE overruns END AS overruns,
       CASE WHEN lag(seq) OVER w IS NULL THEN NULL
            WHEN lag(leader_instance) OVER w = leader_instance AND runs >= lag(runs) OVER w
            THEN runs - lag(runs) OVER w
            ELSE runs END AS runs
  FROM awa.maintenance_health_samples
 WHERE $1::text IS NULL OR branch = $1
WINDOW w AS (PARTITION BY branch ORDER BY seq)
 ORDER BY branch, seq;

-- name: health_interval
-- The health interval the recorded leader writes at (no row or NULL: unknown).
SELECT health_interval_s FROM awa.maintenance_leader;
