"""Maintenance as an operator sees it: who leads, how each branch keeps up, what the
applications declared, and the dashboard's one-document snapshot.

Everything here reads what the maintenance leader persisted (``awa.maintenance_leader``,
``awa.maintenance_health``, ``awa.queue_stats``, ``awa.declarations``), never the job
tables, so a status view or a dashboard refresh costs the database a few cheap reads.
"""

from __future__ import annotations

from typing import Any

from awa.admin.host import AdminHost
from awa.store import Store

__all__ = ["Maintenance"]


class Maintenance:
    """``admin.maintenance``."""

    def __init__(self, host: AdminHost) -> None:
        self._host = host

    def _store(self) -> Store:
        return self._host.store

    async def leader(self) -> dict[str, Any] | None:
        """The last leader recorded (instance, since when, lane mode), or None."""
        return await self._store().leadership.get_leader()

    async def health(self) -> list[dict[str, Any]]:
        """Per-branch lane health as the leader last persisted it."""
        return await self._store().maintenance.read_health()

    async def catalog(self) -> list[dict[str, Any]]:
        """Queues and job kinds the applications declared, with descriptions."""
        return await self._store().observe.read_declarations()

    async def snapshot(self) -> dict[str, Any]:
        """Leader, per-branch health and queue stats, as one JSON-able document (the
        dashboard's ``/api/status``)."""
        return await self._store().observe.snapshot()
