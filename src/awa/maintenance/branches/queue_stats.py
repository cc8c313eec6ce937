"""``queue_stats`` (hygiene lane): depth and lag per queue and live state.

Recomputes ``awa.queue_stats`` (count per queue/state; lag = age of the oldest available
job) every ``interval`` (default 10 s) in one statement, for ``awa queues`` and dashboards.
Metrics: rows ``queue_states``.
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult

__all__ = ["QueueStats"]


class QueueStats(Branch):
    name = "queue_stats"
    lane = HYGIENE
    default_interval = 10.0
    default_timeout = 30.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        rows = await ctx.store.maintenance.refresh_queue_stats(ctx.now)
        ctx.metrics.observe_queue_stats(rows)
        return BranchResult({"queue_states": len(rows)})
