"""``refresh_admin_metadata`` (hygiene lane): which queues and kinds exist and who handles
them, from live jobs and runtime registrations, into ``awa.admin_metadata`` (every
``interval``, default 60 s).

Pairs no longer live nor handled are kept with ``handled_by = 0, live_jobs = 0`` (not
deleted), so operators still see when a kind was first and last seen; a row is rewritten
only when a count drops to zero. Metrics: rows ``pairs`` (pairs upserted: live or handled
now; zeroed pairs are not counted).
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult

__all__ = ["RefreshAdminMetadata"]


class RefreshAdminMetadata(Branch):
    name = "refresh_admin_metadata"
    lane = HYGIENE
    default_interval = 60.0
    default_timeout = 30.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        return BranchResult({"pairs": await ctx.store.maintenance.refresh_admin_metadata(ctx.now)})
