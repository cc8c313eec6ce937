"""Maintenance as an operator sees it: who leads, how each branch keeps up, what the
applications declared, and the dashboard's one-document snapshot.

Everything here reads what the maintenance leader persisted (``awa.maintenance_leader``,
``awa.maintenance_health``, ``awa.queue_stats``, ``awa.declarations``), never the job
tables, so a status view or a dashboard refresh costs the database a few cheap reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from awa.admin.host import AdminHost
from awa.config import MaintenanceConfig
from awa.store import Store

__all__ = ["DEFAULT_HEALTH_INTERVAL", "Maintenance"]

#: The interval assumed when neither the caller nor the leader says one.
DEFAULT_HEALTH_INTERVAL: float = MaintenanceConfig.health_interval


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

    async def health_interval(self) -> float | None:
        """The health interval the recorded leader writes at (persisted with its health
        since schema version 14; None: unknown, e.g. after a bounded ``tick()``)."""
        return await self._store().health_history.interval()

    async def lanes(self, health_interval: float | None = None) -> dict[str, Any]:
        """The snapshot plus how old it is and whether the leader still looks alive.

        The leader rewrites every branch's health row each health interval, which it
        persists with the rows; ``health_interval`` overrides it (and stands in when none is
        persisted; else ``DEFAULT_HEALTH_INTERVAL``). Rows older than twice that mean no
        leader is writing: the data is ``stale`` and every branch's verdict is withheld (a
        dead leader's last "on time" is not a verdict). Ages are measured on the database
        clock, which also stamped the rows. ``health_interval_source`` says where the
        interval came from (``override``, ``leader`` or ``default``).
        """
        snap = await self.snapshot()
        now = await self._store().observe.database_now()
        stored = await self.health_interval()
        if health_interval is not None:
            interval, source = health_interval, "override"
        elif stored is not None:
            interval, source = stored, "leader"
        else:
            interval, source = DEFAULT_HEALTH_INTERVAL, "default"
        age = _age(now, snap["branches"])
        stale_after = 2 * interval
        stale = age is None or age > stale_after
        snap.update(
            now=now,
            health_interval_s=interval,
            health_interval_source=source,
            stale_after_s=stale_after,
            data_age_s=age,
            stale=stale,
            leader_alive=snap["leader"] is not None and not stale,
            queue_stats_age_s=_age(now, snap["queues"]),
        )
        return snap

    async def history(self, branch: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The persisted health samples by branch, oldest first (at most
        ``SAMPLES_PER_BRANCH`` each): time, lateness, worst lateness, duration, overruns
        and runs added by each sample, delayed."""
        by_branch: dict[str, list[dict[str, Any]]] = {}
        for row in await self._store().health_history.samples(branch):
            by_branch.setdefault(row.pop("branch"), []).append(row)
        return by_branch

    async def queue_stats(self) -> dict[str, Any]:
        """Depth and lag per queue and live state as the leader's ``queue_stats`` branch
        last persisted them (``queues``), the jobs each queue finished per terminal state
        in that branch's last window (``finished``: ``finished`` over ``window_s``
        seconds ending at ``updated_at``), with their age on the database clock
        (``age_s``; None when nothing was persisted) and that clock's ``now``."""
        observe = self._store().observe
        rows = await observe.read_queue_stats()
        finished = await observe.read_queue_throughput()
        now = await observe.database_now()
        return {"queues": rows, "finished": finished, "now": now, "age_s": _age(now, rows)}

    async def snapshot(self) -> dict[str, Any]:
        """Leader, per-branch health and queue stats, as one JSON-able document (the
        dashboard's ``/api/status``)."""
        return await self._store().observe.snapshot()


def _age(now: datetime, rows: list[dict[str, Any]]) -> float | None:
    """Seconds since the newest row's ``updated_at`` (None: no rows)."""
    written = [r["updated_at"] for r in rows if r.get("updated_at")]
    return (now - max(written)).total_seconds() if written else None
