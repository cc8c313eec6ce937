-- `queue_counts` (src/awa/sql/admin.sql) as it was before migration 19 (ADR 043): an exact
-- GROUP BY of the live jobs and of the whole history on every call, O(live + history rows).
-- One copy: benchmarks/big_tables.py times it for its before/after figures, and
-- tests/support/queue_counts.py uses it as the oracle of tests/admin/test_queue_counts_*.py.
WITH counts AS (
    SELECT queue, state::text AS state, count(*) AS count,
           CASE WHEN state = 'available'
                THEN extract(epoch FROM coalesce($1::timestamptz, now()) - min(run_at)) END AS lag_s
      FROM awa.jobs GROUP BY queue, state
    UNION ALL
    SELECT queue, state::text, count(*), NULL FROM awa.jobs_done GROUP BY queue, state
    UNION ALL
    SELECT p.queue, 'available', 0, NULL FROM awa.queue_pauses p
     WHERE NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.state = 'available' AND j.queue = p.queue)
)
SELECT c.queue, c.state, c.count, c.lag_s,
       EXISTS (SELECT 1 FROM awa.queue_pauses p WHERE p.queue = c.queue) AS paused
  FROM counts c
 ORDER BY 1, 2
