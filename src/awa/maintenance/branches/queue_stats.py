"""``queue_stats`` (hygiene lane): depth and lag per queue and live state.

Recomputes ``awa.queue_stats`` (count per queue/state; lag = age of the oldest available
job) every ``interval`` (default 10 s) in one statement, for ``awa queues`` and dashboards;
the same statement counts the jobs each queue finished since the previous run into
``awa.queue_throughput`` (from the history's (state, finalized_at) index: each finished job
counted once, O(jobs finished); the console's queues page divides by the window). Then it
reads the paused queues (a second, tiny read) for the ``awa.queue.paused`` gauge: every
queue with live jobs reads 0 or 1, and a paused queue reads 1 even while empty (ADR 024).
With no live job and no paused queue the run reports ``idle``, and the lane stretches the
interval up to ``idle_stretch`` (4) times (40 s by default) until a claim is announced
(``WORK``, ADR 029): on an idle database the figures stay zero, and the first jobs show
within the stretched interval.
Metrics: rows ``queue_states``.
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, WORK, Branch, BranchContext, BranchResult

__all__ = ["QueueStats"]


class QueueStats(Branch):
    name = "queue_stats"
    lane = HYGIENE
    default_interval = 10.0
    default_timeout = 30.0
    wakes_on = frozenset({WORK})
    idle_stretch = 4.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        rows = await ctx.store.maintenance.refresh_queue_stats(ctx.now)
        ctx.metrics.observe_queue_stats(rows)
        paused = {p.queue for p in await ctx.store.queues.paused()}
        known = {str(row["queue"]) for row in rows} | paused
        ctx.metrics.observe_queue_paused({queue: queue in paused for queue in known})
        return BranchResult({"queue_states": len(rows)}, idle=not known)
