"""``compare.py`` adapter for pgqueuer 1.6.0, the strongest Python peer. Run ONLY by the
Python of its own virtual environment (``.awa/venv-pgqueuer``, ``pip install
pgqueuer==1.6.0 asyncpg``), so that its dependencies (pydantic, uvloop, ...) never mix with
this project's. Named ``pgqueuer_adapter`` because a ``pgqueuer.py`` here would shadow the
package.

Calls, all from pgqueuer's public API (``pgqueuer.Queries``, ``pgqueuer.QueueManager``,
``pgqueuer.db.AsyncpgDriver``) with its documented defaults:

- connections: one ``asyncpg.connect`` for the producer side (``Queries(AsyncpgDriver(c))``)
  and one for the worker (``QueueManager(Queries(AsyncpgDriver(c2)))``), as in its quick
  start. The driver serialises calls on a connection, so sharing one would make the
  producer wait for the worker's dequeues.
- migrate: ``await Queries(...).install()`` (what ``pgq install`` runs). Untimed.
- handler: ``@qm.entrypoint(kind)``; args travel as JSON bytes in ``job.payload``. pgqueuer
  has no queues, only entrypoints, so the scenario's queue name is not used: a worker
  serves exactly the entrypoints registered on it.
- worker: ``qm.run(max_concurrent_tasks=50)`` as a task; every other ``run`` argument at
  its default (``batch_size=10``, ``dequeue_timeout=30 s``, ``heartbeat_timeout=30 s``,
  continuous mode). ``max_concurrent_tasks`` is this worker's cap on picked jobs, i.e. the
  same thing as our queue concurrency 50 and Awa's ``max_workers`` 50 (pgqueuer's own
  default is unlimited). It must be at least twice the batch, so a one-slot worker (the
  crash scenario's idle leader) gets 20. ``start_worker`` returns once
  ``qm.listener_healthy()`` round-trips a NOTIFY, i.e. the worker is listening, as the
  other systems' ``start`` calls do. Stop: ``qm.shutdown.set()``, then await the task.
- event loop: ``uvloop.run``, what ``pgq run`` uses when uvloop is installed (it is a
  dependency of pgqueuer). The other adapters use ``asyncio.run``.
- bulk insert: ``await queries.enqueue([kind] * n, [payload] * n, [0] * n)`` (its batch
  form: one ``INSERT ... SELECT FROM UNNEST`` that also writes one ``pgqueuer_log`` row per
  job).
- one insert: ``await queries.enqueue(kind, payload)``.
- scheduled: the batch form with ``execute_after=[run_at - now] * n``. pgqueuer takes a
  delay, not an instant, and stores ``NOW() + delay``, so the due time is shifted by the
  client-to-server time of the call (well under a millisecond here; it can only make
  pgqueuer's lateness look larger, by that much).
- completed: ``count(*) FROM pgqueuer_log WHERE status = 'successful'``. On completion the
  worker's status buffer (flushed every ``batch_size`` jobs or 0.1 s) deletes the job from
  ``pgqueuer`` and inserts its log row in one statement; the log rows stay (the periodic
  aggregation into ``pgqueuer_statistics`` only marks them ``aggregated``), so this count
  is exact where ``log_statistics()`` would first run that aggregation on every poll.
- crash rescue: pgqueuer 1.6.0 re-picks a ``picked`` job whose ``heartbeat`` is older than
  ``heartbeat_timeout`` (30 s) in the next dequeue of any worker. An idle survivor
  dequeues when a NOTIFY arrives or after ``dequeue_timeout`` (30 s), so its rescue is
  expected 30-60 s after the kill, with no leader involved (the leader role only serves
  an unused entrypoint).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import uvloop
from scenarios import Handler, main

try:
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.queries import Queries
except ImportError:  # pragma: no cover - wrong interpreter
    raise SystemExit(f"no pgqueuer for {sys.executable}: wrong interpreter") from None

_COMPLETED_SQL = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
#: ``QueueManager.run`` refuses ``max_concurrent_tasks`` below twice its batch size (10).
_MIN_CONCURRENCY = 20


class PgQueuerDriver:
    name = "pgqueuer 1.6.0"

    def __init__(self, url: str) -> None:
        self.url = url
        self._producer: asyncpg.Connection | None = None
        self._worker_conn: asyncpg.Connection | None = None
        self.queries: Queries | None = None
        self.qm: QueueManager | None = None
        self._run: asyncio.Task[None] | None = None

    async def setup(self, *, migrate: bool = True) -> None:
        self._producer = await asyncpg.connect(self.url)
        self.queries = Queries(AsyncpgDriver(self._producer))
        if migrate:
            await self.queries.install()
        self._worker_conn = await asyncpg.connect(self.url)
        self.qm = QueueManager(Queries(AsyncpgDriver(self._worker_conn)))

    def handler(self, kind: str, fn: Handler, *, queue: str = "default") -> None:
        assert self.qm is not None, "setup() first"

        async def run(job: Job) -> None:
            await fn(json.loads(job.payload or b"{}"))

        self.qm.entrypoint(kind)(run)

    async def start_worker(self, queue: str = "default", concurrency: int = 50) -> None:
        assert self.qm is not None, "setup() first"
        qm = self.qm
        self._run = asyncio.create_task(
            qm.run(max_concurrent_tasks=max(concurrency, _MIN_CONCURRENCY))
        )
        for _ in range(40):
            if self._run.done():
                self._run.result()  # raises what stopped it
                raise RuntimeError("QueueManager.run returned at start")
            try:
                await qm.listener_healthy(timeout=timedelta(seconds=0.25))
                return
            except Exception:  # FailingListenerError until the LISTEN is in place
                continue
        raise RuntimeError("pgqueuer worker not listening after 10 s")

    async def stop_worker(self) -> None:
        if self._run is not None and self.qm is not None:
            self.qm.shutdown.set()
            await asyncio.wait_for(self._run, 60)
            self._run = None

    def _payloads(self, args: list[dict[str, Any]]) -> list[bytes | None]:
        return [json.dumps(a).encode() for a in args]

    async def bulk_insert(self, kind: str, args: list[dict[str, Any]]) -> int:
        assert self.queries is not None, "setup() first"
        n = len(args)
        ids = await self.queries.enqueue([kind] * n, self._payloads(args), [0] * n)
        return len(ids)

    async def insert_one(self, kind: str, args: dict[str, Any]) -> int:
        assert self.queries is not None, "setup() first"
        (job_id,) = await self.queries.enqueue(kind, json.dumps(args).encode())
        return int(job_id)

    async def insert_scheduled(
        self, kind: str, args: list[dict[str, Any]], run_at: datetime
    ) -> int:
        assert self.queries is not None, "setup() first"
        n = len(args)
        delay: timedelta | None = run_at - datetime.now(UTC)
        ids = await self.queries.enqueue(
            [kind] * n, self._payloads(args), [0] * n, execute_after=[delay] * n
        )
        return len(ids)

    async def completed_count(self) -> int:
        assert self._producer is not None, "setup() first"
        return int(await self._producer.fetchval(_COMPLETED_SQL))

    async def close(self) -> None:
        await self.stop_worker()
        for conn in (self._worker_conn, self._producer):
            if conn is not None:
                await conn.close()


def describe() -> dict[str, Any]:
    from importlib.metadata import version

    import pgqueuer

    return {
        "system": PgQueuerDriver.name,
        "pgqueuer_file": pgqueuer.__file__,
        "pgqueuer_version": version("pgqueuer"),
        "asyncpg_version": version("asyncpg"),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    main(PgQueuerDriver, describe, runner=uvloop.run)
