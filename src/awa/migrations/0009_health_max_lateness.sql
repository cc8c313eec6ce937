-- awa schema, version 9: the worst lateness of each maintenance branch over the last health
-- window. last_lateness_s is a single sample (the latest run), and a branch that runs many
-- times per window (promote_scheduled wakes at each due time) can be starved for most of a
-- second between two on-time samples; this column keeps that visible to the CLI and
-- dashboards without a metrics backend.

ALTER TABLE awa.maintenance_health ADD COLUMN max_lateness_s double precision;
