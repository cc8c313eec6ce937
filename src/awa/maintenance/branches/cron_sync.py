"""``cron_sync`` (hygiene lane): publish the cron schedules declared in code.

Every run upserts this process's declarations (``client.cron``) and marks *orphaned* the
schedules that nobody has declared for ``orphan_after`` seconds (default 600): a rolling
deploy may still run processes with the old declarations, so absence from the leader's
code alone is not proof. Orphaned schedules are kept (with their history), never fired,
and come back if declared again. Runtimes also publish their declarations once at start.

Only processes that know the application's declarations run this branch (a worker or a
library-form maintenance runtime); ``awa maintenance run`` without ``--app`` does not.

Defaults: interval 30 s, timeout 30 s. Rows: ``declared``, ``orphaned``.
"""

from __future__ import annotations

import logging
from typing import Any, Self

from awa.cron import CronTable
from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.options import BranchOptions

__all__ = ["CronSync"]

log = logging.getLogger("awa.cron")


class CronSync(Branch):
    name = "cron_sync"
    lane = HYGIENE
    default_interval = 30.0
    default_timeout = 30.0

    def __init__(
        self,
        table: CronTable,
        synced_by: str,
        orphan_after: float = 600.0,
        **kwargs: float | None,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.synced_by = synced_by
        self.orphan_after = orphan_after

    @classmethod
    def from_options(cls, options: BranchOptions) -> Self | None:
        """Only where the application's cron table is known: a pool-only maintenance process
        must not orphan schedules it never saw."""
        return (
            None
            if options.cron is None
            else cls(options.cron, options.synced_by, interval=options.interval(cls.name))
        )

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        declarations = declarations_of(self.table)
        await ctx.store.cron.cron_upsert(declarations, self.synced_by, ctx.now)
        orphaned = await ctx.store.cron.cron_orphan(
            [d["name"] for d in declarations], self.orphan_after, ctx.now
        )
        for name in orphaned:
            log.warning(
                "cron schedule %r is no longer declared by any process: marked orphaned "
                "(kept, not fired; declare it again to bring it back)",
                name,
            )
        return BranchResult({"declared": len(declarations), "orphaned": len(orphaned)})


def declarations_of(table: CronTable) -> list[dict[str, Any]]:
    """The rows ``cron_upsert`` expects, one per declared schedule, each with its queue
    resolved now (``CronTable.resolved`` says why then)."""
    return [
        {"name": s.name, "fingerprint": s.fingerprint(), **s.declaration()}
        for s in table.resolved()
    ]
