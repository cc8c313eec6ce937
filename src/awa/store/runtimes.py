"""``Store.runtimes``: each runtime's liveness row (``sql/runtimes.sql``), the half of a
holder's evidence of life that the presence lock (``awa.store.presence``) does not give."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from awa.db.queries import paired_queries
from awa.store.database import Database

__all__ = ["Runtimes"]

_QUERIES = paired_queries("runtimes")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


class Runtimes:
    """Register, touch, stop and list runtime liveness rows."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def register_runtime(
        self,
        instance_id: str,
        hostname: str,
        pid: int,
        role: str,
        queues: dict[str, int],
        kinds: Sequence[str],
        now: datetime | None = None,
    ) -> None:
        await self._db.guard(
            lambda: self._db.run.execute(
                _sql("register_runtime"),
                instance_id,
                hostname,
                pid,
                role,
                queues,
                list(kinds),
                now,
            )
        )

    async def touch_runtime(self, instance_id: str, now: datetime | None = None) -> bool:
        """Refresh the liveness row; False when there is none (garbage-collected while the
        runtime was unseen, e.g. partitioned: the caller registers again)."""
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("touch_runtime"), instance_id, now)
        )
        return status.rsplit(" ", 1)[-1] != "0"

    async def stop_runtime(self, instance_id: str, now: datetime | None = None) -> None:
        await self._db.guard(lambda: self._db.run.execute(_sql("stop_runtime"), instance_id, now))

    async def list_runtimes(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("list_runtimes")))
        return [dict(r) for r in rows]
