"""``Store.jobs``: the producer and worker hot path (``sql/jobs.sql``): inserts (one row,
or many by COPY), claims, heartbeats, and the batched writes that end or extend attempts.

Every method takes an optional ``now`` (``None`` = the database clock) so tests can pin time,
and batch methods take parallel lists so a flush is one round trip however many jobs it
holds. Other parts that end attempts (callbacks, recovery) reuse ``wake_for`` and
``finalize_cancel_requested`` on their own connection, inside their own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from awa.clock import utcnow
from awa.db.connect import RawJson, decode_json
from awa.db.queries import paired_queries
from awa.errors import InvalidTransition
from awa.model import InsertParams, Job, JobState
from awa.store.attempts import FinishedAttempt, ReportedAttempt, Rescheduled, progress_param
from awa.store.copy_stream import CopyEncoder, copy_rows
from awa.store.database import Connection, Database, one_row
from awa.store.rows import job_from_row

__all__ = ["Jobs"]

_QUERIES = paired_queries("jobs")
_unique_key_of = attrgetter("unique_key")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


def _row_params(p: InsertParams) -> tuple[Any, ...]:
    """$1..$9 of insert_job and insert_claiming: the job's own columns."""
    return (p.kind, p.queue, RawJson(p.args_json), p.priority, p.run_at, p.max_attempts,
            p.timeout_seconds, list(p.tags), RawJson(p.metadata_json))  # fmt: skip


async def _reserve_ids(c: Connection, n: int) -> list[int]:
    ids: list[int] = list(await c.fetchval(_sql("reserve_job_ids"), n) or ())
    if len(ids) != n:
        raise ValueError("reserve_job_ids returned the wrong number of ids")
    return ids


class Jobs:
    """Inserts and the worker path."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def wake_for(self, c: Connection, rows: Sequence[asyncpg.Record]) -> None:
        """Announce requeued jobs (rows with ``queue``, ``state``, ``run_at``), delivered at
        commit: their queues' dispatchers for the ones ``available`` now, and the leader's
        promotion (``awa_due``) with the earliest ``run_at`` of the others."""
        woken = sorted({r["queue"] for r in rows if r["state"] == "available"})
        if woken:
            await c.execute(_sql("notify_queues"), woken)
        deferred = [r["run_at"] for r in rows if r["state"] != "available"]
        if deferred:
            await c.execute(_sql("notify_due"), str(min(deferred).timestamp()))

    async def announce_work(self) -> None:
        """``awa_due`` ``work``: this runtime claimed jobs (``awa.worker.work_announcer``)."""
        await self._db.guard(lambda: self._db.run.execute(_sql("announce_work")))

    async def cancel_the_rest(
        self,
        c: Connection,
        items: Sequence[ReportedAttempt],
        applied: set[int],
        now: datetime | None,
    ) -> set[int]:
        """``applied`` plus those of the other ``items`` that end cancelled because an
        operator asked (their reported outcome did not apply: the request wins)."""
        rest = [i for i in items if i.job_id not in applied]
        if not rest:
            return applied
        return applied | await self.finalize_cancel_requested(
            c, [(i.job_id, i.run_lease) for i in rest], now, progress=[i.progress for i in rest]
        )

    async def finalize_cancel_requested(
        self,
        c: Connection,
        pairs: Sequence[tuple[int, int]],
        now: datetime | None,
        *,
        progress: Sequence[Any] = (),
        states: Sequence[str] | None = None,
    ) -> set[int]:
        """End cancelled the attempts (id, run_lease) an operator asked to cancel, when
        their outcome is anything but success: a reported failure or retry, or a rescue
        (``states``: the rescue's). Returns the ids that ended so."""
        rows = await c.fetch(
            _sql("finalize_cancel_requested"),
            [job_id for job_id, _ in pairs],
            [lease for _, lease in pairs],
            now,
            progress_param(progress),
            states,
        )
        return {int(r["id"]) for r in rows}

    # ----------------------------------------------------------------- inserts

    async def insert_job(
        self, params: InsertParams, *, conn: Connection | None = None, now: datetime | None = None
    ) -> Job:
        async def run(c: Connection) -> Job:
            if params.unique_key is None:
                return await self._insert_row(c, params, None, now)
            async with c.transaction():
                for _ in range(2):
                    job_id = await c.fetchval(_sql("claim_unique_key"), params.unique_key)
                    if job_id is not None:
                        return await self._insert_row(c, params, int(job_id), now)
                    row = await c.fetchrow(_sql("job_by_unique_key"), params.unique_key)
                    if row is not None:
                        return job_from_row(row, duplicate=True, json_as_text=True)
                    await c.execute(_sql("drop_orphan_unique_key"), params.unique_key)
            raise InvalidTransition(0, "unique", f"claim unique key {params.unique_key!r}")

        async with self._db.connection(conn) as c:
            return await self._db.guard(lambda: run(c))

    async def _insert_row(
        self, c: Connection, p: InsertParams, job_id: int | None, now: datetime | None
    ) -> Job:
        inserted = await c.fetchrow(
            _sql("insert_job"),
            *_row_params(p),
            p.unique_key,
            p.unique_states,
            now,
            job_id,
        )
        row = one_row(inserted, "insert_job")
        return Job(
            id=int(row["id"]),
            kind=p.kind,
            queue=p.queue,
            args=decode_json(row["args"]),
            state=JobState(row["state"]),
            priority=p.priority,
            attempt=0,
            max_attempts=p.max_attempts,
            run_at=row["run_at"],
            created_at=row["created_at"],
            timeout=p.timeout_seconds,
            tags=list(p.tags),
            metadata=decode_json(row["metadata"]),
            unique_key=p.unique_key,
        )

    async def insert_claiming(
        self,
        p: InsertParams,
        kinds: Sequence[str],
        instance_id: str,
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
    ) -> tuple[Job, Job | None]:
        """Insert one job (no unique key), claimed for runtime ``instance_id`` (handling
        ``kinds``) when nothing in its queue is ahead of it (ADR 045): the producer's job
        and, if claimed, the handler's copy (decoded apart). ``conn``: a pooled connection
        (never a caller's transaction: the claim would show before the caller commits)."""

        async def run(c: Connection) -> tuple[Job, Job | None]:
            row = one_row(
                await c.fetchrow(
                    _sql("insert_claiming"),
                    *_row_params(p),
                    now,
                    list(kinds),
                    instance_id,
                ),
                "insert_claiming",
            )
            job = job_from_row(row, json_as_text=True)
            if job.state is not JobState.RUNNING:
                return job, None
            return job, job_from_row(row, json_as_text=True)

        async with self._db.connection(conn) as c:
            return await self._db.guard(lambda: run(c))

    async def insert_many(
        self,
        params: Sequence[InsertParams],
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert many jobs with one COPY (plus one statement per unique-keyed job); ids in
        input order (a unique-keyed duplicate: the existing job's id)."""
        if not params:
            return []

        async def run(c: Connection) -> list[int]:
            ids: list[int] = [0] * len(params)
            # A unique key is never empty: no true one means every job goes in the COPY.
            unique = any(map(_unique_key_of, params))
            plain = [p for p in params if p.unique_key is None] if unique else params
            at = now or utcnow()
            async with c.transaction():
                if plain:
                    plain_ids = await _reserve_ids(c, len(plain))
                    if len(plain) == len(params):
                        ids = plain_ids
                    else:
                        reserved = iter(plain_ids)
                        ids = [0 if p.unique_key is not None else next(reserved) for p in params]
                    encoder = CopyEncoder(at)
                    await copy_rows(
                        c,
                        lambda: encoder.stream(plain, plain_ids),
                        lambda: encoder.records(plain, plain_ids),
                    )
                    await self._announce(c, encoder)
                for index, p in enumerate(params if unique else ()):
                    if p.unique_key is not None:
                        ids[index] = (await self.insert_job(p, conn=c, now=now)).id
            return ids

        async with self._db.connection(conn) as c:
            return await self._db.guard(lambda: run(c))

    async def insert_batch(
        self,
        p: InsertParams,
        args_jsons: Sequence[str],
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert one job per encoded args, every other column ``p``'s (no unique key),
        with one COPY; the ids in order (``Client.insert_batch``)."""

        async def run(c: Connection) -> list[int]:
            encoder = CopyEncoder(now or utcnow())
            async with c.transaction():
                ids = await _reserve_ids(c, len(args_jsons))
                await copy_rows(
                    c,
                    lambda: encoder.batch_stream(p, args_jsons, ids),
                    lambda: encoder.batch_records(p, args_jsons, ids),
                )
                await self._announce(c, encoder)
            return ids

        async with self._db.connection(conn) as c:
            return await self._db.guard(lambda: run(c))

    async def _announce(self, c: Connection, encoder: CopyEncoder) -> None:
        """Wake the due jobs' queues and the leader for the earliest deferred job."""
        if encoder.woken:
            await c.execute(_sql("notify_queues"), sorted(encoder.woken))
        if encoder.earliest_deferred is not None:
            await c.execute(_sql("notify_due"), str(encoder.earliest_deferred.timestamp()))

    # ------------------------------------------------------------ worker path

    async def claim_batch(
        self,
        queue: str,
        kinds: Sequence[str],
        limit: int,
        instance_id: str,
        now: datetime | None = None,
    ) -> list[Job]:
        async def run() -> list[Job]:
            rows = await self._db.run.fetch(
                _sql("claim_batch"), queue, list(kinds), limit, instance_id, now
            )
            return [job_from_row(r) for r in rows]

        return await self._db.guard(run)

    async def complete_batch(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        results: Sequence[Any],
        now: datetime | None = None,
        *,
        progress: Sequence[Any] | None = None,
    ) -> set[int]:
        """Record completions, with each attempt's final ``progress`` (default: keep it);
        returns the ids applied (the rest were stale)."""

        async def run() -> set[int]:
            rows = await self._db.run.fetch(
                _sql("complete_batch"),
                list(job_ids),
                list(leases),
                list(results),
                now,
                None if progress is None else progress_param(progress),
            )
            return {int(r["id"]) for r in rows}

        return await self._db.guard(run)

    async def finalize_batch(
        self, items: Sequence[FinishedAttempt], now: datetime | None = None
    ) -> set[int]:
        async def run() -> set[int]:
            async with self._db.acquire() as c, c.transaction():
                rows = await c.fetch(
                    _sql("finalize_batch"),
                    [i.job_id for i in items],
                    [i.run_lease for i in items],
                    [i.state.value for i in items],
                    [i.error for i in items],
                    now,
                    progress_param([i.progress for i in items]),
                )
                # A failed attempt of a job an operator asked to cancel ends cancelled.
                return await self.cancel_the_rest(c, items, {int(r["id"]) for r in rows}, now)

        return await self._db.guard(run)

    async def reschedule_batch(
        self, items: Sequence[Rescheduled], now: datetime | None = None
    ) -> set[int]:
        async def run() -> set[int]:
            async with self._db.acquire() as c, c.transaction():
                rows = await c.fetch(
                    _sql("reschedule_batch"),
                    [i.job_id for i in items],
                    [i.run_lease for i in items],
                    [i.state.value for i in items],
                    [i.run_at for i in items],
                    [i.error for i in items],
                    [i.give_back_attempt for i in items],
                    now,
                    progress_param([i.progress for i in items]),
                )
                await self.wake_for(c, rows)
                return await self.cancel_the_rest(c, items, {int(r["id"]) for r in rows}, now)

        return await self._db.guard(run)

    async def heartbeat(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        progress: Sequence[Any],
        now: datetime | None = None,
    ) -> tuple[set[int], dict[int, str | None]]:
        """Refresh heartbeats and write ``progress`` (``None`` keeps a job's progress);
        return (lost ids, cancel-requested id → operator's reason)."""

        async def run() -> tuple[set[int], dict[int, str | None]]:
            rows = await self._db.run.fetch(
                _sql("heartbeat"), list(job_ids), list(leases), progress_param(progress), now
            )
            lost = {int(r["id"]) for r in rows if r["lost"]}
            cancel = {int(r["id"]): r["cancel_reason"] for r in rows if not r["lost"]}
            return lost, cancel

        return await self._db.guard(run)

    async def notify_queues(self, queues: Sequence[str], *, conn: Connection | None = None) -> None:
        """Wake the dispatchers of ``queues`` (at commit, on ``conn`` when given)."""
        if conn is not None:
            await conn.execute(_sql("notify_queues"), list(queues))
            return
        await self._db.guard(lambda: self._db.run.execute(_sql("notify_queues"), list(queues)))

    async def claim_unique_key(self, c: Connection, key: str) -> int | None:
        """Take ``key`` for a new job; its reserved id, or None when the key is held."""
        value = await c.fetchval(_sql("claim_unique_key"), key)
        return None if value is None else int(value)

    async def job_by_unique_key(self, c: Connection, key: str) -> asyncpg.Record | None:
        """The job that holds ``key`` (None: the holder no longer exists)."""
        return await c.fetchrow(_sql("job_by_unique_key"), key)

    async def drop_orphan_unique_key(self, c: Connection, key: str) -> None:
        """Forget ``key`` when no job holds it any more (then claim it again)."""
        await c.execute(_sql("drop_orphan_unique_key"), key)
