-- awa schema, version 12: a heartbeat is a HOT update.
--
-- A runtime refreshes heartbeat_at (and progress) of every job it runs once per heartbeat
-- interval. jobs_running_idx indexed heartbeat_at, so each beat wrote a new heap tuple plus
-- an entry in every index of awa.jobs: 0 of 2,000 beats were HOT (issue 19), four index
-- writes per beat on the hottest table. With no index on a column a beat changes (and the
-- table's fillfactor 80 leaving room on the page), PostgreSQL updates the row in place on
-- its page and touches no index.
--
-- The index still serves what it was for, finding running jobs (rescue of stale
-- heartbeats, orphans): those queries read every running row anyway, a set bounded by the
-- fleet's total concurrency, and order it by heartbeat_at after reading it.
DROP INDEX awa.jobs_running_idx;
CREATE INDEX jobs_running_idx ON awa.jobs (id) WHERE state = 'running';
