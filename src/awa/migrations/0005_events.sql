-- awa schema, version 5: the event outbox (see adr/006-event-outbox.md).

-- One row per lifecycle event, inserted by the statement that made the change (so an event
-- exists exactly when its change committed). The deliver_events branch fans each new event
-- out to the configured sinks (fanned_out_at), delivers, and deletes events past retention
-- once no delivery of theirs is outstanding.
CREATE TABLE awa.events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    job_id         bigint,
    schedule       text,
    payload        jsonb NOT NULL,
    fanned_out_at  timestamptz
);
-- Fan-out reads only events not yet fanned out (a small, mostly empty index). Retention
-- walks the primary key (ids grow with time); no index on occurred_at, since every index is
-- paid for by each failed job's statement.
CREATE INDEX events_fanout_idx ON awa.events (id) WHERE fanned_out_at IS NULL;

-- One row per (event, sink): the unit of retry. A delivery is pending (neither delivered nor
-- parked), delivered, or parked (refused too often; kept for an operator to flush or purge).
-- lease is bumped by every claim; results are applied only under the lease they were
-- claimed with, so a holder that overran its claim cannot overwrite a newer one.
CREATE TABLE awa.event_deliveries (
    event_id         bigint NOT NULL REFERENCES awa.events (id) ON DELETE CASCADE,
    sink             text NOT NULL,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    lease            bigint NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    rejections       integer NOT NULL DEFAULT 0,
    last_attempt_at  timestamptz,
    last_error       text,
    delivered_at     timestamptz,
    parked_at        timestamptz,
    PRIMARY KEY (event_id, sink)
);
-- The claim: due pending deliveries of one sink, oldest due first.
CREATE INDEX event_deliveries_due_idx ON awa.event_deliveries (sink, next_attempt_at, event_id)
    WHERE delivered_at IS NULL AND parked_at IS NULL;
-- Operator views and flush/purge of parked deliveries.
CREATE INDEX event_deliveries_parked_idx ON awa.event_deliveries (sink, event_id)
    WHERE parked_at IS NOT NULL AND delivered_at IS NULL;

-- The sinks events are fanned out to, and their health. A leader registers the sinks it is
-- configured with; fan-out covers every registered sink (the leader's own configuration
-- first), so a leader that lacks a sink (an older version mid-deploy, a maintenance-only
-- process) queues that sink's deliveries instead of silently skipping them. A sink is
-- forgotten only by an operator. Consecutive failures drive the sink's backoff (retry_at),
-- so an unavailable sink is probed once per backoff step instead of being sent its whole
-- backlog; the CLI shows health without a metrics backend.
CREATE TABLE awa.event_sinks (
    name              text PRIMARY KEY,
    kinds             text[],
    registered_at     timestamptz NOT NULL,
    seen_at           timestamptz NOT NULL,
    failures          integer NOT NULL DEFAULT 0,
    retry_at          timestamptz,
    failing_since     timestamptz,
    last_error        text,
    last_failure_at   timestamptz,
    last_success_at   timestamptz,
    delivered_total   bigint NOT NULL DEFAULT 0,
    failed_total      bigint NOT NULL DEFAULT 0,
    parked_total      bigint NOT NULL DEFAULT 0
);
