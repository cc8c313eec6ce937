-- awa schema, version 15: the console's jobs filters stay fast at 10M history rows (ADR 032).
--
-- The jobs list is newest-first by id with keyset paging. Without these, a filter on a
-- queue, kind or tag that matches few history rows walked the whole id index or scanned
-- every ring partition: 115-235 ms at 1M rows, ten times that at 10M
-- (benchmarks/console_jobs.py). With them each filter reads its own index, already in id
-- order for queue and kind, so a page stops after its 50th row at any depth.
--
-- Cost, paid once per finished job (the history insert): two B-tree entries, and a GIN
-- entry only for jobs that carry tags (the index is partial: untagged jobs, the common
-- case, pay only the predicate test). The live table gets nothing: its rows are updated on
-- every claim and completion, and it is bounded by the backlog, not by history.
CREATE INDEX jobs_done_queue_id_idx ON awa.jobs_done (queue, id);
CREATE INDEX jobs_done_kind_id_idx ON awa.jobs_done (kind, id);
CREATE INDEX jobs_done_tags_idx ON awa.jobs_done USING gin (tags) WHERE tags <> '{}';
