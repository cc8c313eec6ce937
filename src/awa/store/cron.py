"""``Store.cron`` (``sql/cron.sql``): publishing declarations, the leader's evaluation
(compare-and-set of the mark together with the enqueue), and the operator's list/pause/resume."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from awa.db.connect import RawJson
from awa.db.queries import paired_queries
from awa.errors import ScheduleNotFound
from awa.model import InsertParams
from awa.store.database import Database
from awa.store.jobs import Jobs

__all__ = ["Cron"]

_QUERIES = paired_queries("cron")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


class Cron:
    """Schedules: sync from code, the leader's evaluation, the operator's views."""

    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._jobs = jobs

    async def cron_upsert(
        self, declarations: Sequence[dict[str, Any]], synced_by: str, now: datetime | None = None
    ) -> None:
        if not declarations:
            return
        payload = RawJson(json.dumps(list(declarations)))
        await self._db.guard(
            lambda: self._db.run.execute(_sql("cron_upsert"), payload, synced_by, now)
        )

    async def cron_orphan(
        self, declared: Sequence[str], unseen_for: float, now: datetime | None = None
    ) -> list[str]:
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("cron_orphan"), list(declared), unseen_for, now)
        )
        return [str(r["name"]) for r in rows]

    async def cron_refresh_success(self) -> None:
        await self._db.guard(lambda: self._db.run.execute(_sql("cron_refresh_success")))

    async def cron_active(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("cron_active")))
        return [dict(r) for r in rows]

    async def cron_advance(
        self,
        name: str,
        *,
        expected_mark: datetime,
        new_mark: datetime,
        fires: Sequence[InsertParams],
        last_fire_at: datetime | None,
        missed: int,
        last_missed_at: datetime | None,
        overlapped: int,
        next_fire_at: datetime | None,
        now: datetime | None = None,
    ) -> list[int] | None:
        """Advance the mark from ``expected_mark`` and enqueue ``fires``, atomically, with
        one ``cron.fired`` outbox event per enqueued job (same transaction: an event exists
        exactly when its fire does).

        Returns the new job ids, or ``None`` when another evaluator advanced the mark first
        (then nothing was enqueued)."""

        async def run() -> list[int] | None:
            async with self._db.acquire() as c, c.transaction():
                won = await c.fetchval(
                    _sql("cron_advance"),
                    name,
                    new_mark,
                    last_fire_at,
                    len(fires),
                    missed,
                    last_missed_at,
                    overlapped,
                    next_fire_at,
                    expected_mark,
                    now,
                )
                if won is None:
                    return None
                ids = [(await self._jobs.insert_job(p, conn=c, now=now)).id for p in fires]
                if ids:
                    await c.execute(_sql("cron_set_last_job"), name, ids[-1])
                    await c.execute(_sql("event_cron_fired"), name, ids, now)
                return ids

        return await self._db.guard(run)

    async def cron_mark_alerted(
        self, name: str, instant: datetime, now: datetime | None = None
    ) -> bool:
        """Claim the report of ``instant`` as missed (once across leaders); the claim writes
        the ``cron.missed`` outbox event in the same statement. False: already reported."""
        value = await self._db.guard(
            lambda: self._db.run.fetchval(_sql("cron_mark_alerted"), name, instant, now)
        )
        return value is not None

    async def cron_list(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("cron_list")))
        return [dict(r) for r in rows]

    async def cron_set_operator_paused(
        self, name: str, paused: bool, now: datetime | None = None
    ) -> None:
        row = await self._db.guard(
            lambda: self._db.run.fetchrow(_sql("cron_set_operator_paused"), name, paused, now)
        )
        if row is None:
            raise ScheduleNotFound(name)

    async def cron_fire_now(
        self,
        name: str,
        build: Callable[[dict[str, Any]], InsertParams],
        now: datetime | None = None,
    ) -> int:
        """An operator's "run now": lock schedule ``name``, enqueue the job ``build`` makes
        from its row (``fired_at`` is the instant the fire stands for), record it like a fire
        and write its ``cron.fired`` event, in one transaction. The new job's id;
        ``ScheduleNotFound`` when there is no such schedule (nothing enqueued)."""

        async def run() -> int:
            async with self._db.acquire() as c, c.transaction():
                row = await c.fetchrow(_sql("cron_lock_for_fire"), name, now)
                if row is None:
                    raise ScheduleNotFound(name)
                job = await self._jobs.insert_job(build(dict(row)), conn=c, now=now)
                await c.execute(_sql("cron_record_manual_fire"), name, job.id, row["fired_at"])
                await c.execute(_sql("event_cron_fired"), name, [job.id], now)
                return job.id

        return await self._db.guard(run)
