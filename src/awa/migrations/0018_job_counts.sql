-- awa schema, version 18: live-job counts maintained by triggers (issue 19, ADR 039).
--
-- queue_stats and refresh_admin_metadata counted live jobs with index-only scans of the
-- live-state partial indexes (migration 16): O(live rows), 1.2M rows and ~230 ms at the
-- issue's scale. Now every statement that writes awa.jobs appends its net change per
-- (queue, kind, state) to awa.job_count_deltas, and the two hygiene statements fold the
-- pending deltas into awa.job_counts and read the totals there: O(deltas since the last
-- fold) plus O(pairs), whatever the number of live jobs.
--
-- Statement-level AFTER triggers with transition tables: one aggregate per statement, one
-- delta row per (queue, kind, state) it changed, not one per job (a claim of 200 jobs of
-- one kind writes two rows). They fire for COPY too, and for every writable CTE. The
-- deltas table is append-only: writers only INSERT, so two writers never wait on one
-- counter row (a counter UPDATEd by every claim would serialise the claimers); only the
-- fold deletes from it.

-- Totals per (queue, kind, live state). A row whose total falls to 0 is kept (the pairs
-- are few; the fold updates it in place, HOT: n is not indexed); readers skip n = 0.
CREATE TABLE awa.job_counts (
    queue text NOT NULL,
    kind  text NOT NULL,
    state awa.job_state NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, kind, state)
);

-- Pending net changes, not yet folded into job_counts. No index: appended by writers,
-- read and emptied whole by the fold (DELETE ... RETURNING).
CREATE TABLE awa.job_count_deltas (
    queue text NOT NULL,
    kind  text NOT NULL,
    state awa.job_state NOT NULL,
    n     bigint NOT NULL
);

-- Rows a statement inserted: +1 per (queue, kind, state).
CREATE FUNCTION awa.job_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO awa.job_count_deltas (queue, kind, state, n)
    SELECT queue, kind, state, count(*) FROM awa_new GROUP BY queue, kind, state;
    RETURN NULL;
END $$;

-- Rows a statement deleted (finished jobs moved to history, admin deletes): -1.
CREATE FUNCTION awa.job_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO awa.job_count_deltas (queue, kind, state, n)
    SELECT queue, kind, state, -count(*) FROM awa_old GROUP BY queue, kind, state;
    RETURN NULL;
END $$;

-- Rows a statement updated: +1 for the new (queue, kind, state), -1 for the old; groups
-- that net to 0 write nothing, so a heartbeat, a progress write or an aging step (state
-- unchanged) appends no row. (A column list, AFTER UPDATE OF state, cannot be combined
-- with transition tables; the aggregate is the filter.)
CREATE FUNCTION awa.job_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO awa.job_count_deltas (queue, kind, state, n)
    SELECT queue, kind, state, sum(d)
      FROM (SELECT queue, kind, state, 1 AS d FROM awa_new
            UNION ALL
            SELECT queue, kind, state, -1 FROM awa_old) c
     GROUP BY queue, kind, state
    HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

-- TRUNCATE awa.jobs empties it: no job is live, nothing is pending. The lock waits for a
-- fold in progress (it holds job_counts from its start) so its upsert cannot land after
-- the reset; a later fold waits for this transaction.
CREATE FUNCTION awa.job_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE awa.job_counts, awa.job_count_deltas IN EXCLUSIVE MODE;
    DELETE FROM awa.job_count_deltas;
    DELETE FROM awa.job_counts;
    RETURN NULL;
END $$;

-- Rebuild the totals exactly from awa.jobs: for writes that bypassed the triggers
-- (session_replication_role = replica, a restore without triggers) and for repair.
-- SHARE on awa.jobs waits for the writers in progress and holds off new ones, so every
-- write is either in the recount or after it (its deltas then fold on top); EXCLUSIVE on
-- the count tables holds off a fold. A full count, O(live rows): not for a periodic path.
-- Returns the number of (queue, kind, state) totals written.
CREATE FUNCTION awa.recount_jobs() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE awa.jobs IN SHARE MODE;
    LOCK TABLE awa.job_counts, awa.job_count_deltas IN EXCLUSIVE MODE;
    DELETE FROM awa.job_count_deltas;
    DELETE FROM awa.job_counts;
    INSERT INTO awa.job_counts (queue, kind, state, n)
    SELECT queue, kind, state, count(*) FROM awa.jobs GROUP BY queue, kind, state;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;

-- No writer may slip between the backfill and the triggers: SHARE ROW EXCLUSIVE (what
-- CREATE TRIGGER takes anyway) holds off every write to awa.jobs until this migration
-- commits. A write committed before is in the backfill; one after fires the triggers.
LOCK TABLE awa.jobs IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON awa.jobs
    REFERENCING NEW TABLE AS awa_new
    FOR EACH STATEMENT EXECUTE FUNCTION awa.job_counts_inserted();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON awa.jobs
    REFERENCING OLD TABLE AS awa_old
    FOR EACH STATEMENT EXECUTE FUNCTION awa.job_counts_deleted();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON awa.jobs
    REFERENCING OLD TABLE AS awa_old NEW TABLE AS awa_new
    FOR EACH STATEMENT EXECUTE FUNCTION awa.job_counts_updated();
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON awa.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION awa.job_counts_truncated();

SELECT awa.recount_jobs();
