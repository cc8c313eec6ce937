"""``promote_scheduled`` (SLO lane): scheduled and retryable jobs become available when due.

Promotes up to ``batch`` (default 1000) due jobs per run in one statement that also
NOTIFYs their queues, so idle dispatchers wake at once, and reports the next due time.
Runs every ``interval`` (default 5 s) as a backstop, but mostly runs *at* the next due
time: each run reports when the earliest deferred job is due, and the leader forwards due
times announced by inserts and retries (``awa_due`` notifications), so a job scheduled for
T runs at T plus milliseconds.

Metrics: branch duration/lateness/overrun/errors; rows ``promoted``.
Failure: the transaction rolls back; nothing is half-promoted; the lane retries.
"""

from __future__ import annotations

from awa.maintenance.branch import DUE, SLO, Branch, BranchContext, BranchResult

__all__ = ["PromoteScheduled"]


class PromoteScheduled(Branch):
    name = "promote_scheduled"
    lane = SLO
    default_interval = 5.0
    default_timeout = 10.0
    wakes_on = frozenset({DUE})
    #: With nothing scheduled, every due time is announced (``DUE``) by the insert, retry
    #: or snooze that creates it: the interval is only a backstop for a lost announcement.
    idle_stretch = 6.0

    def __init__(self, batch: int = 1000, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        promotion = await ctx.store.maintenance.promote(self.batch, ctx.now)
        promoted = len(promotion.queues)
        if promoted >= self.batch:
            return BranchResult({"promoted": promoted}, more=True)
        # By the database clock, counted from the statement's end: promote judges "due" by
        # that clock, so a wake-up computed from a skewed app clock would spin (ahead) or
        # sleep past due times (behind); counted from the transaction's start it would
        # wake late by the run's own duration.
        next_in = promotion.next_due_in
        return BranchResult(
            {"promoted": promoted},
            next_due_in=None if next_in is None else max(0.0, next_in),
            idle=next_in is None and not promoted,
        )
