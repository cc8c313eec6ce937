"""``rescue_expired_deadlines`` (SLO lane): running attempts past their deadline.

A healthy runtime cancels a handler at its deadline itself; this branch catches attempts
whose holder did not (it died or hung), ``grace`` (default 5 s) after the deadline. The
attempt counts as failed: retried with backoff (1 s × 2^(attempt-1), capped) or failed when
no attempts remain; guarded by run_lease. An attempt an operator asked to cancel ends
``cancelled`` instead (see ``Store.recovery.rescue``). A retry is announced on ``awa_due``,
so promotion makes it available when due. Every ``interval`` (default 5 s), ``batch`` 500;
with no running attempt that has a deadline, the interval stretches up to ``idle_stretch``
(8) times (40 s by default) until a claim is announced (``WORK``, ADR 029).

Metrics: rows ``retried``, ``failed``, ``cancelled``.
"""

from __future__ import annotations

from awa.maintenance.branch import SLO, WORK, Branch, BranchContext, BranchResult

__all__ = ["RescueExpiredDeadlines"]


class RescueExpiredDeadlines(Branch):
    name = "rescue_expired_deadlines"
    lane = SLO
    default_interval = 5.0
    default_timeout = 10.0
    wakes_on = frozenset({WORK})
    idle_stretch = 8.0

    def __init__(self, batch: int = 500, grace: float = 5.0, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.grace = grace

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        if not (await ctx.store.recovery.in_flight()).with_deadline:
            return BranchResult(idle=True)
        found = await ctx.store.recovery.find_expired_deadlines(self.grace, self.batch, ctx.now)
        outcome = await ctx.store.recovery.rescue(
            found,
            from_states=["running"],
            reason="deadline exceeded and the holder did not stop the attempt",
            retry_base_delay=1.0,
            now=ctx.now,
        )
        ctx.count_rescued("deadline", outcome.retried, outcome.failed)
        return BranchResult(
            {"retried": outcome.retried, "failed": outcome.failed, "cancelled": outcome.cancelled},
            more=len(found) >= self.batch,
        )
