"""``Store.admin.bulk``: retry, cancel and discard every job a ``JobFilter`` matches
(``sql/admin_bulk.sql``; ADR 032).

Why batches: a bulk action over a million failed jobs done as one statement would hold a
million row locks and one transaction for minutes, blocking the runtimes' own writes to
those rows and keeping vacuum from reclaiming anything. Here each batch (at most
``batch`` ids, 1,000 by default) is its own short transaction: pick the next ids under
the filter (keyset by id, newest first, so no id is visited twice and a deep batch costs
what the first one does), act on them with the state re-checked in the acting statement,
commit.

Why a confirmed count: the console shows "Retry 37 failed jobs of queue mail?" and the
action carries the 37. If the filter now matches more, nothing is done
(``ConfirmationExceeded``); and the walk stops after acting on that many, so jobs that
start matching while it runs cannot push it past what the operator saw.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from awa.db.queries import paired_queries
from awa.errors import ConfirmationExceeded, InvalidTransition, JobNotFound, ValidationError
from awa.store.database import Connection, Database
from awa.store.job_filter import JobFilter
from awa.store.jobs import Jobs

__all__ = ["BulkActions", "BulkOutcome"]

_QUERIES = paired_queries("admin_bulk")

#: Most ids one batch statement takes.
MAX_BATCH = 10_000


def _sql(name: str) -> str:
    return _QUERIES[name].sql


def _args(where: JobFilter) -> tuple[object, ...]:
    """The filter's parameters without its state: ``states_for`` already narrowed the
    action's states to it, and the same test twice ("state = $1 AND state = ANY ($7)")
    made the planner square its selectivity — 7 % of rows failed was estimated as 0.5 %,
    and it chose to bitmap-scan and sort every match below the cursor on each batch
    instead of reading the next batch in id order."""
    return (None, *where.sql_args()[1:])


@dataclass(frozen=True)
class BulkOutcome:
    action: str
    #: Jobs the filter matched (for this action) when the action started.
    matched: int
    #: Jobs acted on: retried, cancelled (or asked to stop, when running), discarded.
    acted: int
    #: Statements' batches run (each its own transaction).
    batches: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "matched": self.matched,
            "acted": self.acted,
            "batches": self.batches,
        }


class BulkActions:
    """The batch walk and the per-batch statements (also used by single-job discard)."""

    def __init__(
        self,
        db: Database,
        jobs: Jobs,
        retry_one: Callable[[int, datetime | None], Awaitable[Any]],
    ) -> None:
        self._db = db
        self._jobs = jobs
        self._retry_one = retry_one

    async def count(self, action: str, where: JobFilter) -> int:
        """Jobs ``action`` would touch under ``where`` now."""
        states = where.states_for(action)
        if not states:
            return 0

        async def run() -> int:
            async with self._db.acquire() as c, c.transaction():
                await c.execute(_sql("bulk_custom_plans"))
                return int(await c.fetchval(_sql("count_jobs"), *_args(where), states))

        return await self._db.guard(run)

    async def apply(
        self,
        action: str,
        where: JobFilter,
        *,
        confirmed: int,
        batch: int = 1_000,
        reason: str = "cancelled by operator",
        now: datetime | None = None,
    ) -> BulkOutcome:
        """Act on the jobs ``where`` matches, at most ``confirmed`` of them; refuse
        (``ConfirmationExceeded``) if more match now than were confirmed."""
        if not 1 <= batch <= MAX_BATCH:
            raise ValidationError("batch", batch, f"expected 1..{MAX_BATCH}")
        if confirmed < 0:
            raise ValidationError("confirmed", confirmed, "expected a count >= 0")
        matched = await self.count(action, where)
        if matched > confirmed:
            raise ConfirmationExceeded(action, confirmed, matched)
        states = where.states_for(action)
        acted = batches = 0
        cursor: int | None = None
        while acted < confirmed:
            want = min(batch, confirmed - acted)
            done, ids = await self._batch(action, where, states, cursor, want, reason, now)
            batches += 1
            acted += done
            if len(ids) < want:
                break
            cursor = min(ids)
        return BulkOutcome(action, matched, acted, batches)

    async def _batch(
        self,
        action: str,
        where: JobFilter,
        states: list[str],
        cursor: int | None,
        limit: int,
        reason: str,
        now: datetime | None,
    ) -> tuple[int, list[int]]:
        """One batch in one transaction: (jobs acted on, ids picked)."""
        keyed: list[int] = []

        async def run() -> tuple[int, list[int]]:
            async with self._db.acquire() as c, c.transaction():
                await c.execute(_sql("bulk_custom_plans"))
                args = (*_args(where), states, cursor, limit)
                ids = [r["id"] for r in await c.fetch(_sql("bulk_job_ids"), *args)]
                if not ids:
                    return 0, ids
                if action == "retry":
                    acted = await self._retry_batch(c, ids, now, keyed)
                elif action == "cancel":
                    acted = await self.cancel_ids(c, ids, reason, now)
                else:
                    acted = len(await self.discard_ids(c, ids))
                return acted, ids

        acted, ids = await self._db.guard(run)
        # Jobs with a unique key are retried one by one, each in its own transaction,
        # after the batch's commit: retaking the key may fail (another job holds it now),
        # and that must skip this job, not undo the batch.
        for job_id in keyed:
            try:
                await self._retry_one(job_id, now)
                acted += 1
            except (InvalidTransition, JobNotFound):
                pass
        return acted, ids

    async def _retry_batch(
        self, c: Connection, ids: list[int], now: datetime | None, keyed: list[int]
    ) -> int:
        deferred, finished = await self.retry_ids(c, ids, now, with_keys=False)
        keyed.extend(r["id"] for r in await c.fetch(_sql("bulk_keyed_finished"), ids))
        return len(deferred) + len(finished)

    async def retry_ids(
        self, c: Connection, ids: list[int], now: datetime | None, *, with_keys: bool
    ) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        """Make the scheduled, retryable and finished jobs among ``ids`` available now
        and wake their queues; finished jobs with a unique key only ``with_keys`` (the
        caller then retakes their keys in this transaction; a deferred job keeps whatever
        key it holds). The rows (id, queue) retried: (deferred, finished)."""
        deferred = list(await c.fetch(_sql("bulk_retry_deferred"), ids, now))
        finished = list(await c.fetch(_sql("bulk_retry_finished"), ids, now, with_keys))
        if deferred or finished:
            queues = {r["queue"] for r in (*deferred, *finished)}
            await self._jobs.notify_queues(sorted(queues), conn=c)
        return deferred, finished

    async def cancel_ids(
        self, c: Connection, ids: list[int], reason: str, now: datetime | None
    ) -> int:
        """Cancel the waiting jobs among ``ids`` now; ask runtimes to stop the running
        ones (they finish as cancelled at their next heartbeat)."""
        cancelled = await c.fetch(_sql("bulk_cancel_waiting"), ids, reason, now)
        requested = await c.fetch(_sql("bulk_request_cancel"), ids, reason)
        return len(cancelled) + len(requested)

    async def discard_ids(self, c: Connection, ids: list[int]) -> list[int]:
        """Delete the jobs among ``ids`` that are not running; the ids deleted."""
        return [r["id"] for r in await c.fetch(_sql("discard_jobs"), ids)]
