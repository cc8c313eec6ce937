"""``Store.queues`` (``sql/queues.sql``): the operator's pauses of whole queues (ADR 024).

Only the writes and reads of ``awa.queue_pauses`` live here; the pause takes effect inside
the claim statement itself (``claim_batch``), which reads the table with no help from this
module, so a runtime needs no pause state of its own and no extra round trip per claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from awa.db.queries import paired_queries
from awa.store.database import Database

__all__ = ["PauseOutcome", "QueuePause", "Queues"]

_QUERIES = paired_queries("queues")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


@dataclass(frozen=True)
class QueuePause:
    """One paused queue: since when, by whom, and the operator's note."""

    queue: str
    paused_at: datetime
    paused_by: str
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "paused_at": self.paused_at,
            "paused_by": self.paused_by,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PauseOutcome:
    """What a pause call found: the stored pause, and whether this call created it
    (``False``: the queue was paused already and its pause was kept as it was)."""

    pause: QueuePause
    created: bool


class Queues:
    """Pause, resume and list paused queues."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def pause(
        self, queue: str, by: str | None, reason: str | None, now: datetime | None = None
    ) -> PauseOutcome | None:
        """Pause ``queue``; ``None`` when no runtime, declaration or job knows it."""
        row = await self._db.guard(
            lambda: self._db.run.fetchrow(_sql("queue_pause"), queue, by, reason, now)
        )
        if row is None:
            return None
        return PauseOutcome(_pause(row), bool(row["created"]))

    async def resume(self, queue: str) -> bool:
        """Resume ``queue`` and wake its dispatchers; ``False`` when it was not paused."""
        row = await self._db.guard(lambda: self._db.run.fetchrow(_sql("queue_resume"), queue))
        return row is not None

    async def paused(self) -> list[QueuePause]:
        """Every paused queue, by name."""
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("queue_pauses")))
        return [_pause(r) for r in rows]


def _pause(row: Any) -> QueuePause:
    return QueuePause(str(row["queue"]), row["paused_at"], str(row["paused_by"]), row["reason"])
