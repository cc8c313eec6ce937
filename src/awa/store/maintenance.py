"""``Store.maintenance``: the leader's housekeeping (``sql/maintenance.sql``): promotion of
due jobs, history retention and the ring, garbage collection, queue statistics, priority
aging, and the per-branch health rows operators read.

The leader's store is fenced by its leadership ``term`` (``Store.fenced``, ADR 012), so a
deposed leader's late write changes nothing and raises ``LeadershipLost``."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from awa.db.queries import paired_queries
from awa.store.database import Database, one_row
from awa.store.health_history import HealthHistory
from awa.store.ring import RingPass

__all__ = ["HealthRow", "Maintenance", "Promotion"]

T = TypeVar("T")

_QUERIES = paired_queries("maintenance")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


@dataclass(frozen=True)
class Promotion:
    """What one promotion did, and when the next is due."""

    #: The queue of each promoted job (one entry per job).
    queues: list[str]
    #: Seconds from the statement's end until the earliest deferred job is due, by the
    #: database clock (negative when one already is); None when nothing is deferred.
    next_due_in: float | None


@dataclass(frozen=True)
class HealthRow:
    branch: str
    lane: str
    interval_s: float
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_duration_s: float | None
    last_lateness_s: float | None
    runs: int
    errors: int
    overruns: int
    delayed: bool
    rows_touched: int
    last_error: str | None
    #: Worst lateness since the previous health write; None when the branch did not run.
    max_lateness_s: float | None = None


def _seconds_until(next_in: float | None) -> float | None:
    """None when nothing is deferred, or only jobs due at ``'infinity'`` (a foreign
    producer's value: no finite wake-up can serve them)."""
    if next_in is None or next_in == math.inf:
        return None
    return float(next_in)


class Maintenance:
    """Housekeeping statements of the maintenance branches (promotion wakes its queues in
    its own statement)."""

    def __init__(self, db: Database, history: HealthHistory) -> None:
        self._db = db
        self._history = history

    async def promote(self, limit: int, now: datetime | None = None) -> Promotion:
        """Promote due jobs, wake their queues and learn the next due time, in one
        statement: one round trip, fenced or not (the statement takes the fence itself;
        ``LeadershipLost``, having touched nothing, when a newer term began)."""

        async def run() -> Promotion:
            row = await self._db.fetchrow_self_fenced(
                "promote_due", _sql("promote_due"), limit, now
            )
            return Promotion([str(q) for q in row["queues"]], _seconds_until(row["next_in"]))

        return await self._db.guard(run)

    async def promote_due(self, limit: int, now: datetime | None = None) -> list[str]:
        """The queue of each job promoted (the store contract's view of ``promote``)."""
        return (await self.promote(limit, now)).queues

    async def next_due_at(self) -> datetime | None:
        value = await self._db.guard(lambda: self._db.run.fetchval(_sql("next_due_at")))
        return value if isinstance(value, datetime) else None

    async def delete_expired_history(
        self, state: str, retention: float, limit: int, now: datetime | None = None
    ) -> int:
        status = await self._db.guard(
            lambda: self._db.run.execute(
                _sql("delete_expired_history"), state, retention, limit, now
            )
        )
        return _count(status)

    async def gc_runtimes(
        self, stopped_for: float, unseen_for: float, now: datetime | None = None
    ) -> int:
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("gc_runtimes"), stopped_for, unseen_for, now)
        )
        return _count(status)

    async def gc_unique_keys(self, limit: int, after: str = "") -> tuple[int, str]:
        """One page of the unique-key sweep after key ``after``: (keys released, where the
        next page starts; ``""`` once this page reached the end, to start over)."""
        row = one_row(
            await self._db.guard(
                lambda: self._db.run.fetchrow(_sql("gc_unique_keys"), limit, after)
            ),
            "gc_unique_keys",
        )
        full = int(row["scanned"]) >= limit
        return int(row["released"]), str(row["last_key"]) if full else ""

    async def ring_pass(self, body: Callable[[RingPass], Awaitable[T]]) -> T:
        """Run ``body`` as one pass over the history ring: one connection, one transaction
        (fenced like every other of this store), the ring row-locked first (see
        ``awa.store.ring``). ``body`` returns what the pass did. READ COMMITTED whatever
        the role's default: the TRUNCATE trigger of migration 19 (ADR 043) must see the
        deltas and totals committed after the pass began, or a truncated slot's counts
        would outlive it."""

        async def run() -> T:
            async with self._db.acquire() as c, c.transaction(isolation="read_committed"):
                return await body(RingPass(c))

        return await self._db.guard(run)

    async def truncate_slot(self, slot: int, lock_timeout: float = 0.2) -> bool:
        """TRUNCATE one ring partition on its own (``RingPass.truncate``); False when its
        lock was not granted within ``lock_timeout``."""
        return await self.ring_pass(lambda ring: ring.truncate(slot, lock_timeout))

    async def refresh_queue_stats(
        self, now: datetime | None = None, first_window: float = 60.0
    ) -> list[dict[str, Any]]:
        """Depth and lag per queue and live state into ``awa.queue_stats``, and in the same
        statement the jobs finished per queue since the previous call into
        ``awa.queue_throughput`` (the first call looks back ``first_window`` seconds)."""
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("refresh_queue_stats"), now, first_window)
        )
        return [dict(r) for r in rows]

    async def age_priorities(self, step: float, limit: int, now: datetime | None = None) -> int:
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("age_priorities"), step, limit, now)
        )
        return _count(status)

    async def refresh_admin_metadata(self, now: datetime | None = None) -> int:
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("refresh_admin_metadata"), now)
        )
        return _count(status)

    async def write_health(
        self,
        rows: Sequence[HealthRow],
        leader: str,
        now: datetime | None = None,
        *,
        interval: float | None = None,
    ) -> None:
        """Persist per-branch health (with its history sample and the writer's health
        ``interval``: one statement of ``store.health_history``, ADR 033)."""
        await self._history.record(rows, leader, now, interval=interval)

    async def read_health(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("read_health")))
        return [dict(r) for r in rows]


def _count(status: str) -> int:
    """Rows affected, from a command tag like ``DELETE 12``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, AttributeError):
        return 0
