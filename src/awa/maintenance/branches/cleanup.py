"""``cleanup`` (hygiene lane): retention that rotation alone does not cover.

Per run (default every 60 s): delete, in bounded batches (``batch`` 1000), finished jobs of
a state whose retention is shorter than the completed one (the ring's period follows the
completed retention, and rotation carries rows kept longer forward, so completed history,
the bulk, always goes by TRUNCATE; a state kept for less, none by default, is deleted row by
row; ADR 035); forget runtimes stopped for an hour or unseen for a day; release unique keys
whose job was pruned, one page of ``batch`` keys per run in key order, each run going on
where the last stopped (O(page), not O(keys): issue 19). ``on_cleanup`` user callbacks, if
any, run after it.

Metrics: rows ``history_deleted``, ``runtimes_forgotten``, ``unique_keys_released``.
"""

from __future__ import annotations

from typing import Self

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.options import BranchOptions, CleanupHook

__all__ = ["Cleanup"]


class Cleanup(Branch):
    name = "cleanup"
    lane = HYGIENE
    default_interval = 60.0
    default_timeout = 60.0

    def __init__(
        self, batch: int = 1000, hooks: list[CleanupHook] | None = None, **kwargs: float | None
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.hooks = list(hooks or [])
        #: Where the unique-key sweep goes on (``""``: from the start).
        self.unique_after = ""

    @classmethod
    def from_options(cls, options: BranchOptions) -> Self | None:
        """With the runtime's cleanup hooks."""
        return cls(hooks=list(options.cleanup_hooks), interval=options.interval(cls.name))

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        retention = ctx.config.retention
        longest = max(retention.values())
        deleted = 0
        for state, keep in sorted(retention.items()):
            if keep < retention["completed"]:
                deleted += await ctx.store.maintenance.delete_expired_history(
                    state, keep, self.batch, ctx.now
                )
        forgotten = await ctx.store.maintenance.gc_runtimes(3600.0, 86400.0, ctx.now)
        released, self.unique_after = await ctx.store.maintenance.gc_unique_keys(
            self.batch, self.unique_after
        )
        callbacks = await ctx.store.callbacks.prune_callbacks(longest, self.batch, ctx.now)
        for hook in self.hooks:
            await hook(ctx)
        rows = {
            "history_deleted": deleted,
            "runtimes_forgotten": forgotten,
            "unique_keys_released": released,
            "callbacks_pruned": callbacks,
        }
        return BranchResult(rows, more=deleted >= self.batch)
