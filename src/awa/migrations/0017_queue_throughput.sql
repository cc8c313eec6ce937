-- awa schema, version 17: throughput per queue for the console's queues page (issue 17).
--
-- The queue_stats branch counts the jobs that finished (completed, failed, cancelled) since
-- its previous run, per queue, from the history's (state, finalized_at) index: each
-- finished job is counted once, so the cost is O(jobs finished), never O(history). The
-- window (since, until] is kept with the counts so a reader divides by the real elapsed
-- time, and the next run starts where this one ended. Queues that finished nothing in a
-- window keep a row reading 0 (their last window), so "idle" and "unknown" differ.
CREATE TABLE awa.queue_throughput (
    queue     text NOT NULL,
    state     awa.job_state NOT NULL,
    finished  bigint NOT NULL,
    since     timestamptz NOT NULL,
    until     timestamptz NOT NULL,
    PRIMARY KEY (queue, state)
);
