"""``rescue_expired_callbacks`` (SLO lane): parked jobs whose callback timed out.

A job waiting for an external result (``waiting_external``) past its callback timeout is
retried with backoff (1 s × 2^(attempt-1), capped) or failed when no attempts remain; the
callback id is cleared so a late resolution is rejected. Guarded by run_lease. A retry is
announced on ``awa_due``, so promotion makes it available when due. Every ``interval``
(default 5 s), ``batch`` 500. With no parked job and none running (only a running one can
park), the interval stretches up to ``idle_stretch`` (8) times (40 s by default) until a
claim is announced (``WORK``, ADR 029).

No ``cancelled`` row (unlike the other rescue branches): cancelling a parked job cancels it
at once, so a parked job never carries a pending cancel request for this rescue to honour.
"""

from __future__ import annotations

from awa.maintenance.branch import SLO, WORK, Branch, BranchContext, BranchResult

__all__ = ["RescueExpiredCallbacks"]


class RescueExpiredCallbacks(Branch):
    name = "rescue_expired_callbacks"
    lane = SLO
    default_interval = 5.0
    default_timeout = 10.0
    wakes_on = frozenset({WORK})
    idle_stretch = 8.0

    def __init__(self, batch: int = 500, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        flight = await ctx.store.recovery.in_flight()
        if not flight.waiting and not flight.running:
            return BranchResult(idle=True)
        found = await ctx.store.recovery.find_expired_callbacks(self.batch, ctx.now)
        outcome = await ctx.store.recovery.rescue(
            found,
            from_states=["waiting_external"],
            reason="callback timed out",
            retry_base_delay=1.0,
            now=ctx.now,
        )
        ctx.count_rescued("callback", outcome.retried, outcome.failed)
        return BranchResult(
            {"retried": outcome.retried, "failed": outcome.failed}, more=len(found) >= self.batch
        )
