"""``rescue_stale_heartbeats`` (SLO lane): recover running jobs whose holder is gone.

Two signals, checked every ``interval`` (default 1 s) by one statement. On a database with
no running job at all the branch only reads that (``Recovery.in_flight``) and the lane
stretches its interval up to ``idle_stretch`` (16) times (16 s by default); the first claim
anywhere is announced (``WORK``) and brings it back to 1 s, so a runtime crashing right
after it claimed is still seen within a second (ADR 029).

1. *Crashed holders, fast*: every runtime holds a session advisory lock keyed by its
   instance id for its whole life, and beats its liveness row every 0.5 s while it holds
   jobs. A running job whose runtime's lock is gone *and* whose runtime has been silent
   for ``holder_silence`` (2 s) is rescued (claimed at least ``crash_grace`` ago): a live
   runtime whose presence connection merely half-opened keeps beating through its pool
   and keeps its jobs (ADR 014). Both conditions are re-checked in the final write.
2. *Hung holders, backstop*: a running job whose heartbeat is older than
   ``heartbeat_staleness`` (default 30 s) is rescued even if its runtime still holds a lock.

Rescue = retry now (available at once, the attempt counted) or fail when no attempts remain;
only the attempt that was seen (same run_lease, still running) is touched, so a completion
racing the rescue is never overwritten. An attempt an operator asked to cancel ends
``cancelled`` instead (its holder can no longer do it; see ``Store.recovery.rescue``).
``batch`` (default 500) per run.

Metrics: rows ``orphaned_retried``, ``stale_retried``, ``failed``, ``cancelled``.
"""

from __future__ import annotations

from awa.maintenance.branch import SLO, WORK, Branch, BranchContext, BranchResult
from awa.store.recovery import RescueRecheck

__all__ = ["RescueStaleHeartbeats"]


class RescueStaleHeartbeats(Branch):
    name = "rescue_stale_heartbeats"
    lane = SLO
    default_interval = 1.0
    default_timeout = 10.0
    wakes_on = frozenset({WORK})
    idle_stretch = 16.0

    def __init__(self, batch: int = 500, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        if not (await ctx.store.recovery.in_flight()).running:
            return BranchResult(idle=True)
        cfg = ctx.config
        orphaned, stale = await ctx.store.recovery.find_rescuable_running(
            cfg.crash_grace,
            cfg.heartbeat_staleness,
            self.batch,
            ctx.now,
            silence=cfg.holder_silence,
        )
        first = await ctx.store.recovery.rescue(
            orphaned,
            from_states=["running"],
            reason=(
                "holder runtime is gone (presence lock released, "
                f"silent for {cfg.holder_silence:g}s)"
            ),
            retry_base_delay=0.0,
            now=ctx.now,
            recheck=RescueRecheck(holder_silent_for=cfg.holder_silence),
        )
        second = await ctx.store.recovery.rescue(
            stale,
            from_states=["running"],
            reason=f"heartbeat older than {cfg.heartbeat_staleness:g}s",
            retry_base_delay=0.0,
            now=ctx.now,
            recheck=RescueRecheck(heartbeat_older_than=cfg.heartbeat_staleness),
        )
        ctx.count_rescued("orphaned", first.retried, first.failed)
        ctx.count_rescued("heartbeat", second.retried, second.failed)
        rows = {
            "orphaned_retried": first.retried,
            "stale_retried": second.retried,
            "failed": first.failed + second.failed,
            "cancelled": first.cancelled + second.cancelled,
        }
        return BranchResult(rows, more=len(orphaned) + len(stale) >= self.batch)
