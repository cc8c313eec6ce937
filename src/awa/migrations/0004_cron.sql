-- awa schema, version 4: cron schedules (declared in code, synced by the leader).

-- One row per schedule. The declared columns are overwritten by cron_sync; the evaluation
-- columns belong to the evaluator, which advances evaluated_through with a compare-and-set
-- in the same transaction that enqueues the fires (no instant can fire twice).
CREATE TABLE awa.cron_schedules (
    name                   text PRIMARY KEY,
    -- declared (cron_sync)
    expression             text NOT NULL,
    timezone               text NOT NULL,
    kind                   text NOT NULL,
    queue                  text NOT NULL,
    args                   jsonb NOT NULL DEFAULT 'null',
    priority               smallint NOT NULL,
    max_attempts           integer NOT NULL,
    misfire                text NOT NULL CHECK (misfire IN ('skip', 'catchup_all', 'catchup_latest')),
    catchup_window_s       double precision NOT NULL,
    max_catchup            integer NOT NULL,
    overlap                text NOT NULL CHECK (overlap IN ('allow', 'skip', 'buffer_one')),
    paused                 boolean NOT NULL DEFAULT false,
    miss_tolerance_s       double precision NOT NULL,
    tags                   text[] NOT NULL DEFAULT '{}',
    metadata               jsonb NOT NULL DEFAULT '{}',
    fingerprint            text NOT NULL,
    declared_at            timestamptz NOT NULL,
    declared_seen_at       timestamptz NOT NULL,
    synced_by              text NOT NULL,
    orphaned_at            timestamptz,
    -- operator (CLI / API), never touched by cron_sync
    operator_paused        boolean NOT NULL DEFAULT false,
    -- evaluation (leader only)
    evaluated_through      timestamptz NOT NULL,
    last_fire_at           timestamptz,
    last_fired_job_id      bigint,
    last_enqueued_at       timestamptz,
    last_success_at        timestamptz,
    last_success_job_id    bigint,
    next_fire_at           timestamptz,
    fired_total            bigint NOT NULL DEFAULT 0,
    missed_total           bigint NOT NULL DEFAULT 0,
    last_missed_at         timestamptz,
    overlap_skipped_total  bigint NOT NULL DEFAULT 0,
    miss_alerted_for       timestamptz
);
