-- awa schema, version 16: claims and hygiene served by indexes (issue 19, ADR 035).
--
-- The claim index leads with (queue, kind). A claim takes only the kinds its runtime
-- handles; with the old (queue, priority, run_at, id) key, jobs of a kind nobody handles
-- (200k of them at the head of a shared queue) were read and rejected by every claim, and
-- PostgreSQL fell back to a Seq Scan + Sort. Now claim_batch walks one index range per
-- handled kind and merges them in dispatch order, so unhandled jobs are never read.
-- original_priority rides along (INCLUDE) so priority aging filters on it in the index.
--
-- The other live-state indexes carry queue and kind (and state, where one index covers
-- two states) as INCLUDE columns: queue_stats and refresh_admin_metadata count live jobs
-- with index-only scans of these partial indexes, reading O(live rows), never the heap of
-- awa.jobs, whose pages after a burst stay allocated (and were all read by a Seq Scan)
-- long after the jobs moved to history. INCLUDE columns change nothing for HOT: a
-- heartbeat changes none of them.
DROP INDEX awa.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON awa.jobs (queue, kind, priority, run_at, id)
    INCLUDE (original_priority) WHERE state = 'available';

DROP INDEX awa.jobs_due_idx;
CREATE INDEX jobs_due_idx ON awa.jobs (run_at)
    INCLUDE (queue, kind, state) WHERE state IN ('scheduled', 'retryable');

DROP INDEX awa.jobs_claimed_by_idx;
CREATE INDEX jobs_claimed_by_idx ON awa.jobs (claimed_by)
    INCLUDE (queue, kind, state) WHERE state IN ('running', 'waiting_external');
