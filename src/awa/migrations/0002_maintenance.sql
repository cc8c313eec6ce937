-- awa schema, version 2: maintenance leadership record, persisted lane health, queue stats,
-- admin metadata.

-- Who leads maintenance now, since when, in which lane mode (one row).
CREATE TABLE awa.maintenance_leader (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    instance_id  text NOT NULL,
    won_at       timestamptz NOT NULL,
    mode         text NOT NULL,
    mode_reason  text,
    updated_at   timestamptz NOT NULL
);

-- Per-branch health, written by the leader every few seconds in one statement, so the CLI
-- and the built-in dashboard show lane health without a metrics backend.
CREATE TABLE awa.maintenance_health (
    branch            text PRIMARY KEY,
    lane              text NOT NULL,
    interval_s        double precision NOT NULL,
    last_started_at   timestamptz,
    last_finished_at  timestamptz,
    last_duration_s   double precision,
    last_lateness_s   double precision,
    runs              bigint NOT NULL DEFAULT 0,
    errors            bigint NOT NULL DEFAULT 0,
    overruns          bigint NOT NULL DEFAULT 0,
    delayed           boolean NOT NULL DEFAULT false,
    rows_touched      bigint NOT NULL DEFAULT 0,
    last_error        text,
    leader_instance   text NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- Depth and lag per queue and state, refreshed by the queue_stats branch.
CREATE TABLE awa.queue_stats (
    queue       text NOT NULL,
    state       awa.job_state NOT NULL,
    count       bigint NOT NULL,
    lag_s       double precision,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (queue, state)
);

-- Queues and kinds the cluster knows about (from live jobs and runtime registrations),
-- refreshed by refresh_admin_metadata for admin views.
CREATE TABLE awa.admin_metadata (
    queue        text NOT NULL,
    kind         text NOT NULL,
    handled_by   integer NOT NULL DEFAULT 0,
    live_jobs    bigint NOT NULL DEFAULT 0,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (queue, kind)
);
