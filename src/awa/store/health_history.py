"""``Store.health_history`` (``sql/health_history.sql``): the leader's per-branch health,
written together with a bounded history of samples and the health interval (ADR 033).

Why one statement for all three: the leader already writes every branch's health row each
``MaintenanceConfig.health_interval``; storing the sample and the interval in that same
statement costs no extra round trip or transaction, and a sample exists exactly when its
health row was written (a fenced, deposed leader writes neither). The history is a ring of
``SAMPLES_PER_BRANCH`` slots per branch overwritten in place, so it needs no pruning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from awa.db.queries import paired_queries
from awa.store.database import Database

if TYPE_CHECKING:
    from awa.store.maintenance import HealthRow

__all__ = ["SAMPLES_PER_BRANCH", "HealthHistory"]

_QUERIES = paired_queries("health_history")

#: Samples kept per branch: 10 minutes at the default 5 s health interval.
SAMPLES_PER_BRANCH = 120

_COLUMNS = (
    "branch",
    "lane",
    "interval_s",
    "last_started_at",
    "last_finished_at",
    "last_duration_s",
    "last_lateness_s",
    "runs",
    "errors",
    "overruns",
    "delayed",
    "rows_touched",
    "last_error",
    "max_lateness_s",
)


def _sql(name: str) -> str:
    return _QUERIES[name].sql


class HealthHistory:
    """Write health rows with their samples; read the samples and the leader's interval."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        rows: Sequence[HealthRow],
        leader: str,
        now: datetime | None = None,
        *,
        interval: float | None = None,
        ring: int = SAMPLES_PER_BRANCH,
    ) -> None:
        """Upsert ``rows``, add one sample per row to its branch's ring, and record
        ``interval`` (the writer's health interval; None: unknown, e.g. a bounded tick) on
        the leader row of ``leader``."""
        if not rows:
            return
        columns = [[getattr(r, name) for r in rows] for name in _COLUMNS]
        await self._db.guard(
            lambda: self._db.run.execute(
                _sql("record_health"), *columns, leader, now, ring, interval
            )
        )

    async def samples(self, branch: str | None = None) -> list[dict[str, Any]]:
        """Stored samples, by branch then oldest first; ``overruns``/``runs`` are what each
        sample added (``*_total``: the leader's counters as written)."""
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("health_samples"), branch))
        return [dict(r) for r in rows]

    async def interval(self) -> float | None:
        """The recorded leader's health interval in seconds (None: unknown)."""
        value = await self._db.guard(lambda: self._db.run.fetchval(_sql("health_interval")))
        return None if value is None else float(value)
