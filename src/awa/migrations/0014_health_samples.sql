-- awa schema, version 14: a bounded history of per-branch health, and the health interval
-- the leader writes at (ADR 033).
--
-- awa.maintenance_health keeps one row per branch, rewritten by the leader every health
-- interval: enough for "now", nothing to draw a chart from. Each write now also stores one
-- sample per branch in a fixed ring of slots: slot = sample_seq % ring size, updated in
-- place (ON CONFLICT on the primary key). The table never holds more than
-- branches x ring size rows, a write costs one index probe per branch and nothing is ever
-- deleted, so there is no pruning pass, no dead tuples from deletes and no index to scan
-- for old rows: the history is O(1) per write and bounded by construction. No secondary
-- index: no column a sample update changes is indexed, so the in-place updates are HOT
-- (fillfactor leaves room on each page).
ALTER TABLE awa.maintenance_health ADD COLUMN sample_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE awa.maintenance_health_samples (
    branch           text NOT NULL,
    slot             integer NOT NULL,
    seq              bigint NOT NULL,
    lane             text NOT NULL,
    sampled_at       timestamptz NOT NULL,
    interval_s       double precision NOT NULL,
    last_lateness_s  double precision,
    max_lateness_s   double precision,
    last_duration_s  double precision,
    overruns         bigint NOT NULL,
    runs             bigint NOT NULL,
    delayed          boolean NOT NULL,
    leader_instance  text NOT NULL,
    PRIMARY KEY (branch, slot)
) WITH (fillfactor = 70);

-- The interval the recorded leader persists health at (NULL: unknown, e.g. a bounded
-- tick(), or a leader older than this version). Readers judge staleness by it instead of
-- being told.
ALTER TABLE awa.maintenance_leader ADD COLUMN health_interval_s double precision;
