-- awa schema, version 19: history counts maintained by triggers (ADR 043).
--
-- `awa queues`, the console's queues page and Client.queue_stats() counted the terminal
-- history (awa.jobs_done, 10M rows at the big-tables scale) with a GROUP BY on every call:
-- O(history), seconds per call, polled by the console. Now, like the live counts of
-- migration 18 (ADR 039), every statement that writes awa.jobs_done appends its net change
-- per (slot, queue, state) to awa.history_count_deltas, refresh_queue_stats folds them into
-- awa.history_counts, and readers sum totals and pending deltas: O(slots x queues x states
-- + pending deltas), whatever the size of the history.
--
-- Per ring slot, because the ring reclaims history by TRUNCATE of one slot's partition
-- (and the carry moves a slot's longer-kept rows into the current slot first): a TRUNCATE
-- trigger on each partition forgets that slot's totals and pending deltas, so counts stay
-- exact with no row-by-row bookkeeping of what the TRUNCATE removed.

-- Totals per (ring slot, queue, terminal state). A total that falls to 0 keeps its row
-- (readers skip n = 0); a slot's rows go when the slot is TRUNCATEd.
CREATE TABLE awa.history_counts (
    slot  smallint NOT NULL,
    queue text NOT NULL,
    state awa.job_state NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (slot, queue, state)
);

-- Pending net changes, not yet folded. Append-only for writers (a completion only INSERTs
-- here: two completions never wait on one counter row); only the fold and a slot's
-- TRUNCATE delete from it. No index: read whole by the fold and by readers.
CREATE TABLE awa.history_count_deltas (
    slot  smallint NOT NULL,
    queue text NOT NULL,
    state awa.job_state NOT NULL,
    n     bigint NOT NULL
);

-- Rows a statement inserted into the history (completions, failures, cancels, callback
-- outcomes, rescues, the ring's carry): +1 per (slot, queue, state).
CREATE FUNCTION awa.history_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO awa.history_count_deltas (slot, queue, state, n)
    SELECT slot, queue, state, count(*) FROM awa_new GROUP BY slot, queue, state;
    RETURN NULL;
END $$;

-- Rows a statement deleted (cleanup of a short-kept state, dead-letter moves, operator
-- retries and discards of finished jobs): -1.
CREATE FUNCTION awa.history_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO awa.history_count_deltas (slot, queue, state, n)
    SELECT slot, queue, state, -count(*) FROM awa_old GROUP BY slot, queue, state;
    RETURN NULL;
END $$;

-- Rows a statement updated (awa itself never updates history; an operator might): new
-- minus old, groups that net to 0 write nothing.
CREATE FUNCTION awa.history_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO awa.history_count_deltas (slot, queue, state, n)
    SELECT slot, queue, state, sum(d)
      FROM (SELECT slot, queue, state, 1 AS d FROM awa_new
            UNION ALL
            SELECT slot, queue, state, -1 FROM awa_old) c
     GROUP BY slot, queue, state
    HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

-- A ring partition was TRUNCATEd (the rotate branch; TG_ARGV[0] is its slot): forget the
-- slot's totals and pending deltas. No table lock, so completions (which append deltas of
-- the current slot) never wait for a rotation. Exact all the same: the TRUNCATE holds
-- ACCESS EXCLUSIVE on the partition until commit, so every writer of the slot's rows has
-- committed (its deltas are visible here) and none can start; a fold running at once
-- (refresh_queue_stats) row-locks the deltas it takes, so either this DELETE waits for it
-- and the next statement, with a newer snapshot, deletes what it folded, or it waits for
-- this transaction and finds the slot's deltas gone. (A TRUNCATE of the whole history,
-- awa.jobs_done, fires this trigger of every partition.)
CREATE FUNCTION awa.history_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM awa.history_count_deltas WHERE slot = TG_ARGV[0]::smallint;
    DELETE FROM awa.history_counts WHERE slot = TG_ARGV[0]::smallint;
    RETURN NULL;
END $$;

-- Rebuild the totals exactly from awa.jobs_done: for writes that bypassed the triggers
-- (session_replication_role = replica, a data-only restore) and for repair. SHARE on the
-- history (and so on every partition) waits for its writers in progress and holds off new
-- ones; EXCLUSIVE on the count tables holds off a fold. A full count, O(history rows): not
-- for a periodic path. Returns the number of (slot, queue, state) totals written.
CREATE FUNCTION awa.recount_history() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE awa.jobs_done IN SHARE MODE;
    LOCK TABLE awa.history_counts, awa.history_count_deltas IN EXCLUSIVE MODE;
    DELETE FROM awa.history_count_deltas;
    DELETE FROM awa.history_counts;
    INSERT INTO awa.history_counts (slot, queue, state, n)
    SELECT slot, queue, state, count(*) FROM awa.jobs_done GROUP BY slot, queue, state;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;

-- No writer may slip between the backfill and the triggers (as in migration 18): SHARE ROW
-- EXCLUSIVE on the history, and so on every partition, until this migration commits.
LOCK TABLE awa.jobs_done IN SHARE ROW EXCLUSIVE MODE;

-- Statement triggers on the partitioned parent see, in their transition tables, the rows
-- of every partition the statement wrote (PostgreSQL routes them; the slot is a column).
-- Every awa statement writes the history through the parent.
CREATE TRIGGER jobs_done_count_insert AFTER INSERT ON awa.jobs_done
    REFERENCING NEW TABLE AS awa_new
    FOR EACH STATEMENT EXECUTE FUNCTION awa.history_counts_inserted();
CREATE TRIGGER jobs_done_count_delete AFTER DELETE ON awa.jobs_done
    REFERENCING OLD TABLE AS awa_old
    FOR EACH STATEMENT EXECUTE FUNCTION awa.history_counts_deleted();
CREATE TRIGGER jobs_done_count_update AFTER UPDATE ON awa.jobs_done
    REFERENCING OLD TABLE AS awa_old NEW TABLE AS awa_new
    FOR EACH STATEMENT EXECUTE FUNCTION awa.history_counts_updated();

-- Per partition: TRUNCATE (the ring) fires the partition's own trigger, not the parent's;
-- and a statement naming a partition directly (an operator's) fires the partition's
-- statement triggers, not the parent's, so each partition gets the same three (a
-- statement through the parent fires only the parent's: nothing is counted twice).
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM '\d+')::smallint AS slot
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'awa.jobs_done'::regclass
    LOOP
        EXECUTE format('CREATE TRIGGER jobs_done_count_truncate AFTER TRUNCATE ON awa.%I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION awa.history_counts_truncated(%s)',
                       part.relname, part.slot);
        EXECUTE format('CREATE TRIGGER jobs_done_count_insert AFTER INSERT ON awa.%I'
                       ' REFERENCING NEW TABLE AS awa_new FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION awa.history_counts_inserted()', part.relname);
        EXECUTE format('CREATE TRIGGER jobs_done_count_delete AFTER DELETE ON awa.%I'
                       ' REFERENCING OLD TABLE AS awa_old FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION awa.history_counts_deleted()', part.relname);
        EXECUTE format('CREATE TRIGGER jobs_done_count_update AFTER UPDATE ON awa.%I'
                       ' REFERENCING OLD TABLE AS awa_old NEW TABLE AS awa_new'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION awa.history_counts_updated()',
                       part.relname);
    END LOOP;
END $$;

SELECT awa.recount_history();
