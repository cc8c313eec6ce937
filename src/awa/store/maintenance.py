"""Store methods used only by maintenance branches and the leader (kept apart from the hot
path so each file stays readable)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from awa.db.connect import CONNECT_ERRORS, connect
from awa.errors import DatabaseUnavailable
from awa.store.cron import CronStore
from awa.store.dedicated import DedicatedConnection
from awa.store.events import EventStore
from awa.store.presence import PRESENCE_LOCK_CLASS, Presence
from awa.store.queries import load_queries

__all__ = [
    "LEADER_LOCK_KEY",
    "PRESENCE_LOCK_CLASS",
    "HealthRow",
    "LeaderConnection",
    "MaintenanceStore",
    "Presence",
    "RescueOutcome",
]

#: Key of the maintenance leadership lock ("awa_lead" in ASCII, as a bigint).
LEADER_LOCK_KEY = 0x6177615F6C656164


@dataclass(frozen=True)
class RescueOutcome:
    """What one ``MaintenanceStore.rescue`` did: attempts requeued (``retried``; their
    queues in ``queues``), failed for good (``failed``), and ended ``cancelled`` because an
    operator had asked to cancel them (``cancelled``: not rescues, see ``rescue``)."""

    retried: int
    failed: int
    queues: frozenset[str]
    cancelled: int = 0


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


class MaintenanceStore(CronStore, EventStore):
    """``Store`` plus the maintenance (cron evaluation, event outbox) queries."""

    QUERIES = load_queries(
        frozenset(CronStore.QUERIES)
        | frozenset(EventStore.QUERIES)
        | {
            "promote_due",
            "next_due_at",
            "find_orphaned_running",
            "find_abandoned_running",
            "find_rescuable_running",
            "find_expired_deadlines",
            "find_expired_callbacks",
            "finalize_cancel_requested",
            "rescue_retry",
            "rescue_fail",
            "delete_expired_history",
            "gc_runtimes",
            "gc_unique_keys",
            "ring_state",
            "slot_is_empty",
            "slot_is_expired",
            "advance_ring",
            "queue_stats_refresh",
            "age_priorities",
            "refresh_admin_metadata",
            "record_leader",
            "get_leader",
            "write_health",
            "read_health",
        }
    )

    async def promote_due(self, limit: int, now: datetime | None = None) -> list[str]:
        """Promote due jobs and wake their queues in the same transaction; returns the queue
        of each promoted job."""

        async def run() -> list[str]:
            async with self.acquire() as c, c.transaction():
                rows = await c.fetch(self.sql("promote_due"), limit, now)
                queues = sorted({r["queue"] for r in rows})
                if queues:
                    await c.execute(self.sql("notify_queues"), queues)
                return [str(r["queue"]) for r in rows]

        return await self._guard(run)

    async def next_due_at(self) -> datetime | None:
        value = await self._guard(lambda: self.db.fetchval(self.sql("next_due_at")))
        return value if isinstance(value, datetime) else None

    async def _pairs(self, name: str, *args: Any) -> list[tuple[int, int]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql(name), *args))
        return [(int(r["id"]), int(r["run_lease"])) for r in rows]

    async def find_orphaned_running(
        self, grace: float, limit: int, now: datetime | None = None
    ) -> list[tuple[int, int]]:
        return await self._pairs("find_orphaned_running", grace, limit, PRESENCE_LOCK_CLASS, now)

    async def find_rescuable_running(
        self, grace: float, staleness: float, limit: int, now: datetime | None = None
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(orphaned, stale) running attempts, in one round trip; an attempt that is both
        is reported as orphaned (the stronger signal)."""
        rows = await self._guard(
            lambda: self.db.fetch(
                self.sql("find_rescuable_running"),
                grace,
                staleness,
                PRESENCE_LOCK_CLASS,
                limit,
                now,
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
        them when due instead of at promotion's next backstop run."""
        if not pairs:
            return RescueOutcome(0, 0, frozenset())
        ids = [p[0] for p in pairs]
        leases = [p[1] for p in pairs]
        states = list(from_states)

        async def run() -> RescueOutcome:
            async with self.acquire() as c, c.transaction():
                cancelled = await self._finalize_cancel_requested(
                    c, list(zip(ids, leases, strict=True)), now, states=states
                )
                retried = await c.fetch(
                    self.sql("rescue_retry"), ids, leases, states, reason, retry_base_delay, now
                )
                failed = await c.fetch(self.sql("rescue_fail"), ids, leases, states, reason, now)
                await self._wake_for(c, retried)
                return RescueOutcome(
                    len(retried),
                    len(failed),
                    frozenset(str(r["queue"]) for r in retried),
                    len(cancelled),
                )

        return await self._guard(run)

    async def delete_expired_history(
        self, state: str, retention: float, limit: int, now: datetime | None = None
    ) -> int:
        status = await self._guard(
            lambda: self.db.execute(
                self.sql("delete_expired_history"), state, retention, limit, now
            )
        )
        return _count(status)

    async def gc_runtimes(
        self, stopped_for: float, unseen_for: float, now: datetime | None = None
    ) -> int:
        status = await self._guard(
            lambda: self.db.execute(self.sql("gc_runtimes"), stopped_for, unseen_for, now)
        )
        return _count(status)

    async def gc_unique_keys(self, limit: int) -> int:
        status = await self._guard(lambda: self.db.execute(self.sql("gc_unique_keys"), limit))
        return _count(status)

    async def ring_state(self) -> tuple[int, int, datetime]:
        row = await self._guard(lambda: self.db.fetchrow(self.sql("ring_state")))
        assert row is not None
        return int(row["current_slot"]), int(row["slot_count"]), row["rotated_at"]

    async def slot_is_empty(self, slot: int) -> bool:
        return bool(await self._guard(lambda: self.db.fetchval(self.sql("slot_is_empty"), slot)))

    async def slot_is_expired(
        self, slot: int, retention: dict[str, float], now: datetime | None = None
    ) -> bool:
        value = await self._guard(
            lambda: self.db.fetchval(
                self.sql("slot_is_expired"),
                slot,
                retention["completed"],
                retention["failed"],
                retention["cancelled"],
                now,
            )
        )
        return bool(value)

    async def truncate_slot(self, slot: int, lock_timeout: float = 0.2) -> bool:
        """TRUNCATE one ring partition: constant time however many rows it holds.

        Gives up (returns False) when its lock is not granted within ``lock_timeout``: a
        TRUNCATE queued behind a long reader of the history would make every later reader
        (``get_job``, duplicate unique-key lookups) queue behind *it*."""
        if not 0 <= slot < 64:
            raise ValueError(f"slot {slot} out of range")
        millis = max(1, int(lock_timeout * 1000))

        async def run() -> bool:
            async with self.acquire() as c, c.transaction():
                await c.execute(f"SET LOCAL lock_timeout = '{millis}ms'")
                try:
                    await c.execute(f"TRUNCATE awa.jobs_done_{int(slot)}")
                except asyncpg.exceptions.LockNotAvailableError:
                    return False
                return True

        return await self._guard(run)

    async def advance_ring(self, new_slot: int, old_slot: int, now: datetime | None = None) -> bool:
        value = await self._guard(
            lambda: self.db.fetchval(self.sql("advance_ring"), new_slot, old_slot, now)
        )
        return value is not None

    async def refresh_queue_stats(self, now: datetime | None = None) -> list[dict[str, Any]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql("queue_stats_refresh"), now))
        return [dict(r) for r in rows]

    async def age_priorities(self, step: float, limit: int, now: datetime | None = None) -> int:
        status = await self._guard(
            lambda: self.db.execute(self.sql("age_priorities"), step, limit, now)
        )
        return _count(status)

    async def refresh_admin_metadata(self, now: datetime | None = None) -> int:
        status = await self._guard(lambda: self.db.execute(self.sql("refresh_admin_metadata"), now))
        return _count(status)

    async def record_leader(
        self, instance_id: str, mode: str, reason: str | None, now: datetime | None = None
    ) -> None:
        await self._guard(
            lambda: self.db.execute(self.sql("record_leader"), instance_id, now, mode, reason)
        )

    async def get_leader(self) -> dict[str, Any] | None:
        row = await self._guard(lambda: self.db.fetchrow(self.sql("get_leader")))
        return None if row is None else dict(row)

    async def write_health(
        self, rows: Sequence[HealthRow], leader: str, now: datetime | None = None
    ) -> None:
        if not rows:
            return
        columns = [
            [getattr(r, name) for r in rows]
            for name in (
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
        ]
        await self._guard(lambda: self.db.execute(self.sql("write_health"), *columns, leader, now))

    async def read_health(self) -> list[dict[str, Any]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql("read_health")))
        return [dict(r) for r in rows]


def _count(status: str) -> int:
    """Rows affected, from a command tag like ``DELETE 12``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, AttributeError):
        return 0


class LeaderConnection(DedicatedConnection):
    """The leader's dedicated connection (outside every pool): holds the session-scoped
    leadership lock, answers the watchdog's health check, and LISTENs for due times.

    Session scope is the point: if the process or this connection dies, PostgreSQL releases
    the lock and a follower can take over at its next election attempt.
    """

    @classmethod
    async def open(cls, url: str) -> LeaderConnection:
        return cls(await connect(url))

    async def try_acquire(self) -> bool:
        try:
            return bool(
                await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY)
            )
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"leader election failed: {exc}") from exc

    async def check(self) -> bool:
        """True while this session still holds the leadership lock."""
        try:
            return bool(
                await self._conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objsubid = 1"
                    " AND ((classid::bigint << 32) | objid::bigint) = $1)",
                    LEADER_LOCK_KEY,
                )
            )
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"leader health check failed: {exc}") from exc

    async def release(self) -> None:
        if self.alive:
            with contextlib.suppress(*CONNECT_ERRORS):
                await self._conn.execute("SELECT pg_advisory_unlock($1)", LEADER_LOCK_KEY)

    async def listen(self, channel: str, on_payload: Callable[[str], None]) -> None:
        def deliver(_c: object, _pid: int, _channel: str, payload: object) -> None:
            on_payload(str(payload))

        try:
            await self._conn.add_listener(channel, deliver)
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"LISTEN {channel} failed: {exc}") from exc
