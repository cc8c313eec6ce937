"""``Store.admin``: operator queries over jobs (``sql/admin.sql``): inspection and the manual
transitions (cancel, retry, discard); ``.bulk`` does them by filter. None is on a hot
path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from awa.db.queries import paired_queries
from awa.errors import InvalidTransition, JobNotFound, ValidationError
from awa.model import Job, JobState
from awa.store.admin_bulk import BulkActions
from awa.store.database import Connection, Database
from awa.store.job_filter import JobFilter
from awa.store.jobs import Jobs
from awa.store.rows import job_from_row

__all__ = ["JobsAdmin", "QueueCount", "find_jobs"]

_QUERIES = paired_queries("admin")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


@dataclass(frozen=True)
class QueueCount:
    queue: str
    state: str
    count: int
    lag_s: float | None
    #: The queue is paused (ADR 024): its available jobs wait for a resume.
    paused: bool = False


class JobsAdmin:
    """Operator reads and transitions; wakes queues through ``jobs``."""

    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._jobs = jobs
        #: Retry, cancel and discard by filter, in batches (ADR 032).
        self.bulk = BulkActions(db, jobs, self.retry_job)

    async def get_job(self, job_id: int) -> Job:
        row = await self._db.guard(lambda: self._db.run.fetchrow(_sql("get_job"), job_id))
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    async def list_jobs(
        self,
        where: JobFilter | None = None,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first, ids below ``before_id``; ``where``, or its first fields as
        keywords. Planned for the actual filter (ADR 032): a cached generic plan could not
        use the filter's index."""
        if where is None:
            where = JobFilter(state=state, queue=queue, kind=kind)
        if not 1 <= limit <= 10_000:
            raise ValidationError("limit", limit, "expected 1..10000")

        async def run() -> list[Any]:
            async with self._db.acquire() as c, c.transaction():
                await c.execute(_sql("force_custom_plans"))
                return list(await c.fetch(_sql("list_jobs"), *where.sql_args(), before_id, limit))

        return [job_from_row(r) for r in await self._db.guard(run)]

    async def discard_job(self, job_id: int) -> Job:
        """Delete a job that is not running (live or finished) and free its unique key;
        the job as it was. A running job must be cancelled first (``InvalidTransition``)."""
        job = await self.get_job(job_id)

        async def run() -> list[int]:
            async with self._db.acquire() as c, c.transaction():
                return await self.bulk.discard_ids(c, [job_id])

        if not await self._db.guard(run):
            current = await self.get_job(job_id)  # JobNotFound if it went meanwhile
            raise InvalidTransition(job_id, current.state.value, "discard")
        return job

    async def cancel_job(self, job_id: int, reason: str, now: datetime | None = None) -> Job:
        """Cancel now if the job is waiting; ask its runtime to stop it if it is running."""

        async def run() -> None:
            async with self._db.acquire() as c, c.transaction():
                # Lock first: without it, a result committed between the two statements
                # below made a queued job look uncancellable.
                await c.fetchval(_sql("lock_live_job"), job_id)
                if await self.bulk.cancel_ids(c, [job_id], reason, now):
                    return
                row = await c.fetchrow(_sql("get_job"), job_id)
                if row is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(job_id, row["state"], "cancel")

        await self._db.guard(run)
        return await self.get_job(job_id)

    async def retry_job(self, job_id: int, now: datetime | None = None) -> Job:
        """Make a finished, scheduled or retryable job available now (attempts reset when
        it had finished)."""

        async def run() -> None:
            async with self._db.acquire() as c, c.transaction():
                deferred, finished = await self.bulk.retry_ids(c, [job_id], now, with_keys=True)
                if finished:
                    await self._retake_unique_key(c, job_id)
                if deferred or finished:
                    return
                current = await c.fetchrow(_sql("get_job"), job_id)
                if current is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(job_id, current["state"], "retry")

        await self._db.guard(run)
        return await self.get_job(job_id)

    async def _retake_unique_key(self, c: Connection, job_id: int) -> None:
        key = await c.fetchval(_sql("job_unique_key"), job_id)
        if key is None:
            return
        if await c.fetchval(_sql("reclaim_unique_key"), key, job_id) is None:
            raise InvalidTransition(job_id, "finished", f"retry: unique key {key!r} is taken")

    async def queue_counts(self, now: datetime | None = None) -> list[QueueCount]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("queue_counts"), now))
        return [
            QueueCount(
                r["queue"], r["state"], int(r["count"]), _float(r["lag_s"]), bool(r["paused"])
            )
            for r in rows
        ]

    async def state_counts_of(self, ids: list[int]) -> dict[str, int]:
        """Jobs per state among ``ids`` (live or finished); states without one are absent."""
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("state_counts_of"), ids))
        return {r["state"]: int(r["count"]) for r in rows}

    async def unhandled_kinds(
        self, liveness_window: float, now: datetime | None = None
    ) -> list[tuple[str, str, int]]:
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("unhandled_kinds"), now, liveness_window)
        )
        return [(r["queue"], r["kind"], int(r["count"])) for r in rows]


async def find_jobs(
    conn: Connection,
    *,
    states: list[str] | None = None,
    kind: str | None = None,
    queue: str | None = None,
    args_json: str | None = None,
) -> list[Job]:
    """Jobs, live or finished, matching every filter given (None = any), oldest first;
    ``args_json`` is a JSON object the job's args must contain. Runs on ``conn`` as it is,
    so a caller's open transaction sees its own uncommitted inserts (``awa.testing``)."""
    rows = await conn.fetch(_sql("find_jobs"), states, kind, queue, args_json)
    return [job_from_row(r, json_as_text=True) for r in rows]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
