"""Store methods used only by maintenance branches and the leader (kept apart from the hot
path so each file stays readable).

The leader opens its stores with its leadership ``term``: every transaction they run is then
fenced by it (``awa.store.fencing``, ADR 012), so a deposed leader's late write changes
nothing and raises ``LeadershipLost``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from awa.store.cron import CronStore
from awa.store.events import EventStore
from awa.store.fencing import FencedStore
from awa.store.leadership import LEADER_LOCK_KEY, LeaderConnection
from awa.store.presence import PRESENCE_LOCK_CLASS, Presence
from awa.store.queries import load_queries
from awa.store.ring import RingPass

__all__ = [
    "LEADER_LOCK_KEY",
    "PRESENCE_LOCK_CLASS",
    "HealthRow",
    "LeaderConnection",
    "MaintenanceStore",
    "Presence",
    "RescueOutcome",
    "RescueRecheck",
    "RingPass",
]

T = TypeVar("T")


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
class RescueRecheck:
    """What a rescue's final write re-checks besides (id, run_lease, state): the heartbeat
    is still older than ``heartbeat_older_than`` seconds, the holder has still not beaten
    its liveness row for ``holder_silent_for`` seconds (``None`` skips a check)."""

    heartbeat_older_than: float | None = None
    holder_silent_for: float | None = None


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


class MaintenanceStore(FencedStore, CronStore, EventStore):
    """``Store`` plus the maintenance (cron evaluation, event outbox) queries; fenced by
    its ``term`` when opened with one."""

    QUERIES = load_queries(
        frozenset(CronStore.QUERIES)
        | frozenset(EventStore.QUERIES)
        | {
            "promote_due",
            "next_due_at",
            "next_due_in",
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
            "ring_lock",
            "slot_is_empty",
            "slot_is_expired",
            "truncate_slot",
            "advance_ring",
            "local_lock_timeout",
            "queue_stats_refresh",
            "age_priorities",
            "refresh_admin_metadata",
            "record_leader",
            "get_leader",
            "current_term",
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

    async def next_due_in(self, now: datetime | None = None) -> float | None:
        """Seconds until the earliest deferred job is due, by the database clock (None:
        nothing deferred)."""
        value = await self._guard(lambda: self.db.fetchval(self.sql("next_due_in"), now))
        return None if value is None else float(value)

    async def _pairs(self, name: str, *args: Any) -> list[tuple[int, int]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql(name), *args))
        return [(int(r["id"]), int(r["run_lease"])) for r in rows]

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
        rows = await self._guard(
            lambda: self.db.fetch(
                self.sql("find_rescuable_running"),
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
            async with self.acquire() as c, c.transaction():
                cancelled = await self._finalize_cancel_requested(
                    c, list(zip(ids, leases, strict=True)), now, states=states
                )
                retried = await c.fetch(
                    self.sql("rescue_retry"),
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
                    self.sql("rescue_fail"),
                    ids,
                    leases,
                    states,
                    reason,
                    now,
                    check.heartbeat_older_than,
                    check.holder_silent_for,
                )
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

    async def ring_pass(self, body: Callable[[RingPass], Awaitable[T]]) -> T:
        """Run ``body`` as one pass over the history ring: one connection, one transaction
        (fenced like every other of this store), the ring row-locked first (see
        ``awa.store.ring``). ``body`` returns what the pass did."""

        async def run() -> T:
            async with self.acquire() as c, c.transaction():
                return await body(RingPass(self.QUERIES, c))

        return await self._guard(run)

    async def truncate_slot(self, slot: int, lock_timeout: float = 0.2) -> bool:
        """TRUNCATE one ring partition on its own (``RingPass.truncate``); False when its
        lock was not granted within ``lock_timeout``."""
        return await self.ring_pass(lambda ring: ring.truncate(slot, lock_timeout))

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
        """Record ``instance_id`` as the leader, in lane ``mode``, of this store's term."""
        await self._guard(
            lambda: self.db.execute(
                self.sql("record_leader"), instance_id, now, mode, reason, self.term
            )
        )

    async def get_leader(self) -> dict[str, Any] | None:
        row = await self._guard(lambda: self.db.fetchrow(self.sql("get_leader")))
        return None if row is None else dict(row)

    async def current_term(self) -> dict[str, Any]:
        """The current leadership term: ``term``, ``holder``, ``started_at``."""
        row = await self._guard(lambda: self.db.fetchrow(self.sql("current_term")))
        return {} if row is None else dict(row)

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
