"""``Store.recovery``: running attempts whose holder is gone, stuck or out of time
(``sql/recovery.sql``): the finds (startup recovery pages through them; the rescue branches
run them every pass) and ``rescue``, which retries or fails what is still the attempt seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from awa.db.queries import paired_queries
from awa.store.database import Database, one_row
from awa.store.jobs import Jobs
from awa.store.presence import PRESENCE_LOCK_CLASS

__all__ = ["InFlight", "Recovery", "RescueOutcome", "RescueRecheck"]

_QUERIES = paired_queries("recovery")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


@dataclass(frozen=True)
class RescueOutcome:
    """What one ``Recovery.rescue`` did: attempts requeued (``retried``; their
    queues in ``queues``), failed for good (``failed``), and ended ``cancelled`` because an
    operator had asked to cancel them (``cancelled``: not rescues, see ``rescue``)."""

    retried: int
    failed: int
    queues: frozenset[str]
    cancelled: int = 0


@dataclass(frozen=True)
class InFlight:
    """What the rescue branches could find work among (``Recovery.in_flight``): any running
    attempt, any running attempt with a deadline, any parked job. All False means an idle
    database, where those branches may run less often until work appears."""

    running: bool
    with_deadline: bool
    waiting: bool


@dataclass(frozen=True)
class RescueRecheck:
    """What a rescue's final write re-checks besides (id, run_lease, state): the heartbeat
    is still older than ``heartbeat_older_than`` seconds, the holder has still not beaten
    its liveness row for ``holder_silent_for`` seconds (``None`` skips a check)."""

    heartbeat_older_than: float | None = None
    holder_silent_for: float | None = None


class Recovery:
    """Find and rescue attempts; ending one an operator asked to cancel goes through
    ``jobs`` (the same statement a worker's report uses)."""

    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._jobs = jobs

    async def _pairs(self, name: str, *args: Any) -> list[tuple[int, int]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql(name), *args))
        return [(int(r["id"]), int(r["run_lease"])) for r in rows]

    async def in_flight(self) -> InFlight:
        """One read of ``InFlight`` (three index probes)."""
        row = one_row(
            await self._db.guard(lambda: self._db.run.fetchrow(_sql("in_flight"))), "in_flight"
        )
        return InFlight(bool(row["running"]), bool(row["with_deadline"]), bool(row["waiting"]))

    async def find_orphaned_running(
        self,
        grace: float,
        limit: int,
        now: datetime | None = None,
        *,
        silence: float | None = None,
    ) -> list[tuple[int, int]]:
        """Running attempts whose holder's presence lock is gone and, with ``silence``,
        whose holder has not beaten its liveness row for that many seconds (ADR 014)."""
        return await self._pairs(
            "find_orphaned_running", grace, limit, PRESENCE_LOCK_CLASS, now, silence
        )

    async def find_rescuable_running(
        self,
        grace: float,
        staleness: float,
        limit: int,
        now: datetime | None = None,
        *,
        silence: float | None = None,
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(orphaned, stale) running attempts, in one round trip; an attempt that is both
        is reported as orphaned (the stronger signal). Orphaned needs the presence lock
        gone and, with ``silence``, no liveness beat of the holder for that long."""
        rows = await self._db.guard(
            lambda: self._db.run.fetch(
                _sql("find_rescuable_running"),
                grace,
                staleness,
                PRESENCE_LOCK_CLASS,
                limit,
                now,
                silence,
            )
        )
        orphaned = [(int(r["id"]), int(r["run_lease"])) for r in rows if r["orphaned"]]
        stale = [
            (int(r["id"]), int(r["run_lease"])) for r in rows if r["stale"] and not r["orphaned"]
        ]
        return orphaned, stale

    async def find_abandoned_running(
        self, unseen_for: float, limit: int, now: datetime | None = None
    ) -> list[tuple[int, int]]:
        return await self._pairs("find_abandoned_running", unseen_for, limit, now)

    async def find_expired_deadlines(
        self, grace: float, limit: int, now: datetime | None = None
    ) -> list[tuple[int, int]]:
        return await self._pairs("find_expired_deadlines", grace, limit, now)

    async def find_expired_callbacks(
        self, limit: int, now: datetime | None = None
    ) -> list[tuple[int, int]]:
        return await self._pairs("find_expired_callbacks", limit, now)

    async def rescue(
        self,
        pairs: Sequence[tuple[int, int]],
        *,
        from_states: Sequence[str],
        reason: str,
        retry_base_delay: float,
        now: datetime | None = None,
        recheck: RescueRecheck | None = None,
    ) -> RescueOutcome:
        """Retry (attempts left) or fail (none left) each attempt that is still the one seen:
        same id, same run_lease, still in ``from_states``. Anything that moved on meanwhile
        (completed, re-claimed) is left alone.

        An attempt an operator asked to cancel (``cancel_job`` on a running job) ends
        ``cancelled`` instead, with the operator's reason, as it would have had its holder
        reported any outcome but success (``finalize`` / ``reschedule``): the request wins
        over a retry and over a failed last attempt. That is not a rescue, so it writes no
        ``job.rescued`` event and no rescue error record, and is counted apart
        (``RescueOutcome.cancelled``; neither ``retried`` nor ``failed``, and its queue is
        not in ``queues``). The cancel runs first, in the same transaction; the retry and
        fail statements also skip cancel-requested rows, so a request committed between the
        statements is not lost either: that attempt stays running, and the next rescue pass
        cancels it.

        Wake-ups, delivered at commit: the queues of jobs requeued ``available`` are
        notified (dispatchers claim at once), and the earliest ``run_at`` of jobs requeued
        ``retryable`` is announced on ``awa_due`` (``notify_due``), so the leader promotes
        them when due instead of at promotion's next backstop run.

        ``recheck`` repeats the reason's own test in the final write, so a heartbeat or a
        liveness beat landing between the find and the write saves the attempt."""
        if not pairs:
            return RescueOutcome(0, 0, frozenset())
        ids = [p[0] for p in pairs]
        leases = [p[1] for p in pairs]
        states = list(from_states)
        check = recheck or RescueRecheck()

        async def run() -> RescueOutcome:
            async with self._db.acquire() as c, c.transaction():
                cancelled = await self._jobs.finalize_cancel_requested(
                    c, list(zip(ids, leases, strict=True)), now, states=states
                )
                retried = await c.fetch(
                    _sql("rescue_retry"),
                    ids,
                    leases,
                    states,
                    reason,
                    retry_base_delay,
                    now,
                    check.heartbeat_older_than,
                    check.holder_silent_for,
                )
                failed = await c.fetch(
                    _sql("rescue_fail"),
                    ids,
                    leases,
                    states,
                    reason,
                    now,
                    check.heartbeat_older_than,
                    check.holder_silent_for,
                )
                await self._jobs.wake_for(c, retried)
                return RescueOutcome(
                    len(retried),
                    len(failed),
                    frozenset(str(r["queue"]) for r in retried),
                    len(cancelled),
                )

        return await self._db.guard(run)
