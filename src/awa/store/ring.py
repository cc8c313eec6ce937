"""One pass over the terminal-history ring, inside one transaction (the ``rotate`` branch).

Checking a slot, TRUNCATEing it and advancing the ring used to be three transactions, so a
second rotation (an overlapping leader, a ``tick()``) could interleave with them: prune a
slot the other had just made current, or advance twice. A ``RingPass`` runs them all on one
connection in one transaction that first row-locks ``awa.ring_state`` (a concurrent pass
finds it locked and does nothing) and, from a fenced ``Database``, commits only in its leadership
term. Each TRUNCATE (with the copy of the rows a slot carries forward, ADR 035) runs in a
savepoint under a short lock timeout, so a partition that a long reader holds is skipped
(and retried next pass) without undoing the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from awa.db.queries import paired_queries
from awa.store.database import Connection

__all__ = ["RingPass", "RingState"]

_QUERIES = paired_queries("ring")


@dataclass(frozen=True)
class RingState:
    """The ring as this pass locked it: ``age_s`` is how long ago it last rotated, by the
    database clock (or the pinned ``now``)."""

    current_slot: int
    slot_count: int
    age_s: float


class RingPass:
    """The ring's queries on one connection, in the transaction of one pass."""

    def __init__(self, conn: Connection) -> None:
        self._c = conn

    async def lock(self, now: datetime | None = None) -> RingState | None:
        """Row-lock the ring for this pass; ``None`` when another pass holds it."""
        row = await self._c.fetchrow(_QUERIES["ring_lock"].sql, now)
        if row is None:
            return None
        return RingState(int(row["current_slot"]), int(row["slot_count"]), float(row["age_s"]))

    async def slot_is_empty(self, slot: int) -> bool:
        return bool(await self._c.fetchval(_QUERIES["slot_is_empty"].sql, slot))

    async def slot_is_expired(
        self, slot: int, retention: dict[str, float], now: datetime | None = None
    ) -> bool:
        value = await self._c.fetchval(
            _QUERIES["slot_is_expired"].sql,
            slot,
            retention["completed"],
            retention["failed"],
            retention["cancelled"],
            now,
        )
        return bool(value)

    async def truncate(self, slot: int, lock_timeout: float = 0.2) -> bool:
        """TRUNCATE one ring partition: constant time however many rows it holds.

        Gives up (returns False, the rest of the pass unaffected) when its lock is not
        granted within ``lock_timeout``: a TRUNCATE queued behind a long reader of the
        history would make every later reader (``get_job``, duplicate unique-key lookups)
        queue behind *it*."""
        if not 0 <= slot < 64:
            raise ValueError(f"slot {slot} out of range")
        millis = f"{max(1, int(lock_timeout * 1000))}ms"
        try:
            async with self._c.transaction():
                await self._c.execute(_QUERIES["local_lock_timeout"].sql, millis)
                await self._c.execute(_QUERIES["truncate_slot"].sql.format(slot=int(slot)))
        except asyncpg.exceptions.LockNotAvailableError:
            return False
        return True

    async def carry(
        self,
        slot: int,
        current: int,
        retention: dict[str, float],
        now: datetime | None = None,
        lock_timeout: float = 0.2,
    ) -> int | None:
        """Copy the rows of ``slot`` still within their state's retention into the
        ``current`` slot, then TRUNCATE ``slot``, in one savepoint: the number of rows
        carried, or None (nothing changed) when the TRUNCATE's lock was not granted within
        ``lock_timeout``. How the ring reclaims a slot whose bulk has expired while a few
        longer-kept rows (failed, cancelled) have not (ADR 035)."""
        if not 0 <= slot < 64:
            raise ValueError(f"slot {slot} out of range")
        millis = f"{max(1, int(lock_timeout * 1000))}ms"
        try:
            async with self._c.transaction():
                await self._c.execute(_QUERIES["local_lock_timeout"].sql, millis)
                status = await self._c.execute(
                    _QUERIES["carry_slot"].sql,
                    slot,
                    current,
                    retention["completed"],
                    retention["failed"],
                    retention["cancelled"],
                    now,
                )
                await self._c.execute(_QUERIES["truncate_slot"].sql.format(slot=int(slot)))
        except asyncpg.exceptions.LockNotAvailableError:
            return None
        return int(status.split()[-1])

    async def advance(self, new_slot: int, old_slot: int, now: datetime | None = None) -> bool:
        """Make ``new_slot`` current (compare-and-set on ``old_slot``)."""
        value = await self._c.fetchval(_QUERIES["advance_ring"].sql, new_slot, old_slot, now)
        return value is not None
