"""Read-only queries behind the operator surfaces (``awa dashboard``, status views): they
read what the maintenance leader persisted, so they cost the database almost nothing."""

from __future__ import annotations

from typing import Any

from awa.store.maintenance import MaintenanceStore
from awa.store.queries import load_queries

__all__ = ["ObserveStore"]


class ObserveStore(MaintenanceStore):
    QUERIES = load_queries(frozenset(MaintenanceStore.QUERIES) | {"read_queue_stats"})

    async def read_queue_stats(self) -> list[dict[str, Any]]:
        rows = await self._guard(lambda: self.pool.fetch(self.sql("read_queue_stats")))
        return [dict(r) for r in rows]

    async def snapshot(self) -> dict[str, Any]:
        """Leader, per-branch lane health and queue stats, as one JSON-able document."""
        return {
            "leader": await self.get_leader(),
            "branches": await self.read_health(),
            "queues": await self.read_queue_stats(),
        }
