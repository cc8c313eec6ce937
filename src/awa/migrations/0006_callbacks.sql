-- awa schema, version 6: callbacks (external waits).
--
-- A handler registers a callback while its attempt runs, hands the id and token to an
-- external system, and parks its job ('waiting_external'). awa.jobs keeps the hot facts the
-- rescue branch reads (callback_id, callback_timeout_at, from version 1); this table keeps
-- the rest, one row per registration, and outlives the job's wait so that a second or late
-- resolution gets a precise answer (already resolved, expired) instead of "unknown".
--
-- Only a SHA-256 hash of the token is stored: the token is 256 random bits, so a fast hash
-- is enough (nothing to brute-force), and a leaked table does not let anyone resolve.
CREATE TABLE awa.callbacks (
    id            uuid PRIMARY KEY,
    job_id        bigint NOT NULL,
    -- The attempt that registered it: a resolution applies only while the job still waits
    -- on this callback in this attempt.
    run_lease     bigint NOT NULL,
    token_hash    bytea NOT NULL,
    -- true: on completion the handler runs again with the payload; false: the payload is
    -- recorded as the job's result.
    resume        boolean NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'completed', 'failed', 'retried')),
    created_at    timestamptz NOT NULL,
    timeout_at    timestamptz NOT NULL,
    resolved_at   timestamptz,
    payload       jsonb,
    error         text,
    retry_delay_s double precision,
    CONSTRAINT callbacks_resolved CHECK ((state = 'pending') = (resolved_at IS NULL))
);

-- Retention: the oldest registrations first.
CREATE INDEX callbacks_created_idx ON awa.callbacks (created_at);
