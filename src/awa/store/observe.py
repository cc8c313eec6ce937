"""Read-only queries behind the operator surfaces (``awa dashboard``, status views): they
read what the maintenance leader persisted, so they cost the database almost nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from awa.db.connect import RawJson
from awa.store.maintenance import MaintenanceStore
from awa.store.queries import load_queries

__all__ = ["ObserveStore"]


class ObserveStore(MaintenanceStore):
    QUERIES = load_queries(
        frozenset(MaintenanceStore.QUERIES)
        | {"read_queue_stats", "publish_declarations", "read_declarations"}
    )

    async def publish_declarations(
        self, rows: list[dict[str, Any]], declared_by: str, now: datetime | None = None
    ) -> None:
        if not rows:
            return
        payload = RawJson(json.dumps(rows))
        await self._guard(
            lambda: self.db.execute(self.sql("publish_declarations"), payload, declared_by, now)
        )

    async def read_declarations(self) -> list[dict[str, Any]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql("read_declarations")))
        return [dict(r) for r in rows]

    async def read_queue_stats(self) -> list[dict[str, Any]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql("read_queue_stats")))
        return [dict(r) for r in rows]

    async def snapshot(self) -> dict[str, Any]:
        """Leader, per-branch lane health and queue stats, as one JSON-able document."""
        return {
            "leader": await self.get_leader(),
            "branches": await self.read_health(),
            "queues": await self.read_queue_stats(),
        }
