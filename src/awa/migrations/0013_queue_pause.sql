-- awa schema, version 13: operator pauses of whole queues (ADR 024).
--
-- A row here means "no runtime claims jobs of this queue": the claim statement
-- (claim_batch in sql/jobs.sql) refuses to pick anything while the queue has a row, so a
-- pause takes effect for the very next claim of every runtime, and the jobs stay
-- 'available', untouched, until the row is deleted (resume, which also wakes the queue's
-- dispatchers through the usual awa_jobs notification). Jobs are still inserted, promoted,
-- rescued and aged while paused; only claiming stops.
--
-- The table stays tiny (one row per paused queue) and its primary key is the one lookup the
-- claim makes, once per claim statement, not per row.
CREATE TABLE awa.queue_pauses (
    queue      text PRIMARY KEY,
    paused_at  timestamptz NOT NULL,
    -- who paused it: the caller's label, else the database role that ran the pause
    paused_by  text NOT NULL,
    -- the operator's note (NULL: none given)
    reason     text
);
