-- awa schema, version 11: one definition of a job's terminal-history row.
--
-- Seven statements move a job from awa.jobs to awa.jobs_done (completion, failure, cancel,
-- the cancel-request rule, callback completion and failure, rescue failure), and each used
-- to spell out the same 24-column INSERT. awa.history_row builds that row once: the live
-- row as it was deleted, plus what the move decides (ring slot, terminal state, when,
-- errors, final progress, result). It only computes (no side effect), and is a one-SELECT
-- SQL function returning SETOF, not STRICT, not VOLATILE: the planner inlines it where it
-- is called in FROM, so each statement keeps its plan. Passing the whole row still costs
-- some per-row work, ~7 % of complete_batch's time, so that hot statement keeps its
-- columns written out (ADR 016); the six others call this. Called as:
--
--   INSERT INTO awa.jobs_done
--   SELECT h.* FROM gone g, t, awa.ring_state r,
--          awa.history_row(g.job, r.current_slot, 'completed', t.now, g.errors, ...) h
--
-- The runtime role needs EXECUTE on it (docs/security.md): with EXECUTE revoked the
-- planner does not inline it and the call is refused.
CREATE FUNCTION awa.history_row(
    job awa.jobs,
    slot smallint,
    state awa.job_state,
    finalized_at timestamptz,
    errors jsonb,
    progress jsonb,
    result jsonb
) RETURNS SETOF awa.jobs_done
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 1
AS $$
SELECT slot, (job).id, (job).kind, (job).queue, (job).args, state, (job).priority,
       (job).original_priority, (job).attempt, (job).max_attempts, (job).run_at,
       (job).created_at, (job).attempted_at, finalized_at, (job).timeout_s, (job).tags,
       (job).metadata, errors, progress, result, (job).unique_key, (job).unique_states,
       (job).run_lease, (job).claimed_by
$$;
