"""``priority_aging`` (hygiene lane): waiting jobs gain priority as they wait.

An available job that has waited ``step`` seconds (default 300) per level already gained
moves up one level (4 → 3 → 2 → 1), so low-priority work cannot starve forever behind a
steady stream of urgent jobs. Bounded (``batch`` 1000, ``SKIP LOCKED``), every ``interval``
(default 30 s; a run that aged nothing stretches it up to 120 s until a claim is announced,
ADR 029). Metrics: rows ``aged``.
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, WORK, Branch, BranchContext, BranchResult

__all__ = ["PriorityAging"]


class PriorityAging(Branch):
    name = "priority_aging"
    lane = HYGIENE
    default_interval = 30.0
    wakes_on = frozenset({WORK})
    idle_stretch = 4.0
    default_timeout = 30.0

    def __init__(self, step: float = 300.0, batch: int = 1000, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.batch = batch

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        aged = await ctx.store.maintenance.age_priorities(self.step, self.batch, ctx.now)
        return BranchResult({"aged": aged}, more=aged >= self.batch, idle=not aged)
