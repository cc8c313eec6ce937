-- awa schema, version 7: the dead-letter hold (ADR 009).

-- Per-queue dead-letter policies. Declared in code (client.dlq.declare) and published by
-- runtimes and the leader's dead_letter branch, like cron schedules: a policy nobody has
-- declared for a while is marked orphaned (kept; its queue's failures are no longer moved,
-- its retention still applies to the letters already held).
CREATE TABLE awa.dead_letter_policies (
    queue             text PRIMARY KEY,
    -- seconds a dead letter is kept after it entered the hold; NULL = until purged
    retention_s       double precision CHECK (retention_s IS NULL OR retention_s > 0),
    declared_at       timestamptz NOT NULL,
    declared_seen_at  timestamptz NOT NULL,
    synced_by         text NOT NULL,
    orphaned_at       timestamptz
);

-- Failed jobs of queues with a policy, moved out of the terminal-history ring (jobs_done) by
-- the dead_letter branch in one statement (DELETE … RETURNING feeding this INSERT), so a job
-- is always in exactly one of the two. The whole row is kept: args, the full error history,
-- attempts, metadata and timestamps. A job keeps its id (ids are unique for life).
CREATE TABLE awa.dead_letters (
    id                bigint PRIMARY KEY,
    kind              text NOT NULL,
    queue             text NOT NULL,
    args              jsonb NOT NULL,
    priority          smallint NOT NULL,
    original_priority smallint NOT NULL,
    attempt           integer NOT NULL,
    max_attempts      integer NOT NULL,
    run_at            timestamptz NOT NULL,
    created_at        timestamptz NOT NULL,
    attempted_at      timestamptz,
    finalized_at      timestamptz NOT NULL,
    timeout_s         double precision,
    tags              text[] NOT NULL,
    metadata          jsonb NOT NULL,
    errors            jsonb NOT NULL,
    progress          jsonb,
    unique_key        text,
    unique_states     awa.job_state[],
    run_lease         bigint NOT NULL,
    claimed_by        text,
    -- why the job failed for good: the message of its last error record
    reason            text NOT NULL,
    -- when it entered the hold (retention counts from here)
    dead_at           timestamptz NOT NULL,
    -- an operator's retry: when, and the fresh job it created (set together, once)
    retried_at        timestamptz,
    retried_job_id    bigint,
    CONSTRAINT dead_letters_retried_pair CHECK ((retried_at IS NULL) = (retried_job_id IS NULL))
);
-- Listing newest first within a queue, and retention per queue.
CREATE INDEX dead_letters_queue_id_idx ON awa.dead_letters (queue, id);
CREATE INDEX dead_letters_queue_dead_at_idx ON awa.dead_letters (queue, dead_at);

-- The move finds failed history rows of the policy queues through this partial index: only
-- failed rows are in it (completed and cancelled rows pay nothing), and the failures of
-- queues without a policy, which stay in the ring, are skipped without being read.
CREATE INDEX jobs_done_failed_queue_idx ON awa.jobs_done (queue) WHERE state = 'failed';
