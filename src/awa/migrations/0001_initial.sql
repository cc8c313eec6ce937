-- awa schema, version 1: live jobs, terminal-history ring, unique claims, runtime liveness.
-- Applied by awa.db.migrate inside one transaction under an advisory lock.

CREATE TYPE awa.job_state AS ENUM (
    'scheduled', 'available', 'running', 'waiting_external', 'retryable',
    'completed', 'failed', 'cancelled'
);

-- One id sequence for live and finished jobs: a job keeps its id for its whole life.
CREATE SEQUENCE awa.job_id_seq AS bigint;

-- Live jobs. Claims read only the partial index over 'available' rows, so scheduled and
-- retryable rows sharing this heap never slow a claim. Finished jobs leave this table.
CREATE TABLE awa.jobs (
    id                  bigint PRIMARY KEY DEFAULT nextval('awa.job_id_seq'),
    kind                text NOT NULL,
    queue               text NOT NULL,
    args                jsonb NOT NULL DEFAULT '{}',
    state               awa.job_state NOT NULL,
    priority            smallint NOT NULL,
    original_priority   smallint NOT NULL,
    attempt             integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    run_at              timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    attempted_at        timestamptz,
    heartbeat_at        timestamptz,
    deadline_at         timestamptz,
    timeout_s           double precision,
    tags                text[] NOT NULL DEFAULT '{}',
    metadata            jsonb NOT NULL DEFAULT '{}',
    errors              jsonb NOT NULL DEFAULT '[]',
    progress            jsonb,
    unique_key          text,
    unique_states       awa.job_state[],
    run_lease           bigint NOT NULL DEFAULT 0,
    claimed_by          text,
    cancel_requested    boolean NOT NULL DEFAULT false,
    callback_id         uuid,
    callback_timeout_at timestamptz,
    CONSTRAINT jobs_live_state CHECK (state IN
        ('scheduled', 'available', 'running', 'waiting_external', 'retryable')),
    CONSTRAINT jobs_priority_range CHECK (priority BETWEEN 1 AND 4),
    CONSTRAINT jobs_attempts_range CHECK (max_attempts BETWEEN 1 AND 1000 AND attempt >= 0)
) WITH (fillfactor = 80);

-- Claim path: ORDER BY priority, run_at, id within a queue, available rows only.
CREATE INDEX jobs_claim_idx ON awa.jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Promotion: due scheduled/retryable rows, earliest first.
CREATE INDEX jobs_due_idx ON awa.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- Rescue branches and per-runtime crash rescue.
CREATE INDEX jobs_running_idx ON awa.jobs (heartbeat_at) WHERE state = 'running';
CREATE INDEX jobs_deadline_idx ON awa.jobs (deadline_at) WHERE state = 'running' AND deadline_at IS NOT NULL;
CREATE INDEX jobs_claimed_by_idx ON awa.jobs (claimed_by) WHERE state IN ('running', 'waiting_external');
CREATE INDEX jobs_callback_timeout_idx ON awa.jobs (callback_timeout_at) WHERE state = 'waiting_external';
CREATE UNIQUE INDEX jobs_callback_id_idx ON awa.jobs (callback_id) WHERE callback_id IS NOT NULL;

-- Terminal history: a ring of list partitions. New finished rows go to the current slot;
-- the hygiene lane advances the slot and TRUNCATEs a slot once all its rows are past
-- retention, so reclaiming history never needs a long row-by-row DELETE.
CREATE TABLE awa.jobs_done (
    slot                smallint NOT NULL,
    id                  bigint NOT NULL,
    kind                text NOT NULL,
    queue               text NOT NULL,
    args                jsonb NOT NULL,
    state               awa.job_state NOT NULL,
    priority            smallint NOT NULL,
    original_priority   smallint NOT NULL,
    attempt             integer NOT NULL,
    max_attempts        integer NOT NULL,
    run_at              timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    attempted_at        timestamptz,
    finalized_at        timestamptz NOT NULL,
    timeout_s           double precision,
    tags                text[] NOT NULL,
    metadata            jsonb NOT NULL,
    errors              jsonb NOT NULL,
    progress            jsonb,
    result              jsonb,
    unique_key          text,
    unique_states       awa.job_state[],
    run_lease           bigint NOT NULL,
    claimed_by          text,
    CONSTRAINT jobs_done_state CHECK (state IN ('completed', 'failed', 'cancelled'))
) PARTITION BY LIST (slot);

CREATE TABLE awa.jobs_done_0 PARTITION OF awa.jobs_done FOR VALUES IN (0);
CREATE TABLE awa.jobs_done_1 PARTITION OF awa.jobs_done FOR VALUES IN (1);
CREATE TABLE awa.jobs_done_2 PARTITION OF awa.jobs_done FOR VALUES IN (2);
CREATE TABLE awa.jobs_done_3 PARTITION OF awa.jobs_done FOR VALUES IN (3);
CREATE TABLE awa.jobs_done_4 PARTITION OF awa.jobs_done FOR VALUES IN (4);
CREATE TABLE awa.jobs_done_5 PARTITION OF awa.jobs_done FOR VALUES IN (5);
CREATE TABLE awa.jobs_done_6 PARTITION OF awa.jobs_done FOR VALUES IN (6);
CREATE TABLE awa.jobs_done_7 PARTITION OF awa.jobs_done FOR VALUES IN (7);
CREATE INDEX jobs_done_id_idx ON awa.jobs_done (id);
CREATE INDEX jobs_done_finalized_idx ON awa.jobs_done (state, finalized_at);

CREATE TABLE awa.ring_state (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    current_slot smallint NOT NULL DEFAULT 0,
    slot_count   smallint NOT NULL DEFAULT 8,
    rotated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO awa.ring_state DEFAULT VALUES;

-- Unique keys. A row holds the key while its job is in one of the job's unique_states;
-- the triggers below release it when the job moves to a state outside that scope.
CREATE TABLE awa.job_unique (
    unique_key text PRIMARY KEY,
    job_id     bigint NOT NULL
);
CREATE INDEX job_unique_job_idx ON awa.job_unique (job_id);

CREATE FUNCTION awa.release_unique_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM awa.job_unique WHERE unique_key = NEW.unique_key AND job_id = NEW.id;
    RETURN NULL;
END
$$;

-- WHEN clauses are evaluated without entering plpgsql, so jobs without a unique key pay
-- nothing for this.
CREATE TRIGGER jobs_release_unique AFTER UPDATE OF state ON awa.jobs
    FOR EACH ROW WHEN (NEW.unique_key IS NOT NULL AND NOT (NEW.state = ANY (NEW.unique_states)))
    EXECUTE FUNCTION awa.release_unique_key();
CREATE TRIGGER jobs_done_release_unique AFTER INSERT ON awa.jobs_done
    FOR EACH ROW WHEN (NEW.unique_key IS NOT NULL AND NOT (NEW.state = ANY (NEW.unique_states)))
    EXECUTE FUNCTION awa.release_unique_key();

-- Every job, live or finished, for admin reads (not on any hot path).
CREATE VIEW awa.all_jobs AS
    SELECT id, kind, queue, args, state, priority, attempt, max_attempts, run_at, created_at,
           attempted_at, NULL::timestamptz AS finalized_at, heartbeat_at, deadline_at, timeout_s,
           tags, metadata, errors, progress, NULL::jsonb AS result, unique_key, run_lease, claimed_by
      FROM awa.jobs
    UNION ALL
    SELECT id, kind, queue, args, state, priority, attempt, max_attempts, run_at, created_at,
           attempted_at, finalized_at, NULL, NULL, timeout_s,
           tags, metadata, errors, progress, result, unique_key, run_lease, claimed_by
      FROM awa.jobs_done;

-- One row per runtime process: who is alive, in which role, serving which queues.
CREATE TABLE awa.runtimes (
    instance_id  text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    role         text NOT NULL,
    queues       jsonb NOT NULL DEFAULT '{}',
    kinds        text[] NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    stopped_at   timestamptz
);
