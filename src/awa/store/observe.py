"""``Store.observe`` (``sql/observe.sql``): the queries behind the operator surfaces (``awa
dashboard``, status views): they mostly read what the maintenance leader persisted, so they cost
the database almost nothing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from awa.db.connect import RawJson
from awa.db.queries import paired_queries
from awa.store.database import Database
from awa.store.leadership import Leadership
from awa.store.maintenance import Maintenance

__all__ = ["Observe"]

_QUERIES = paired_queries("observe")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


class Observe:
    """Operator reads; the snapshot joins in the leader and branch health."""

    def __init__(self, db: Database, leadership: Leadership, maintenance: Maintenance) -> None:
        self._db = db
        self._leadership = leadership
        self._maintenance = maintenance

    async def publish_declarations(
        self, rows: list[dict[str, Any]], declared_by: str, now: datetime | None = None
    ) -> None:
        if not rows:
            return
        payload = RawJson(json.dumps(rows))
        await self._db.guard(
            lambda: self._db.run.execute(_sql("publish_declarations"), payload, declared_by, now)
        )

    async def read_declarations(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("read_declarations")))
        return [dict(r) for r in rows]

    async def read_queue_throughput(self) -> list[dict[str, Any]]:
        """Jobs finished per queue and terminal state in the leader's last window."""
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("read_queue_throughput")))
        return [dict(r) for r in rows]

    async def read_queue_stats(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("read_queue_stats")))
        return [dict(r) for r in rows]

    async def database_now(self) -> datetime:
        """The database clock (what persisted ``updated_at`` columns were written with)."""
        now: datetime = await self._db.guard(lambda: self._db.run.fetchval(_sql("database_now")))
        return now

    async def snapshot(self) -> dict[str, Any]:
        """Leader, per-branch lane health and queue stats, as one JSON-able document."""
        return {
            "leader": await self._leadership.get_leader(),
            "branches": await self._maintenance.read_health(),
            "queues": await self.read_queue_stats(),
        }
