"""``compare.py`` adapter for Awa 0.6.9 (the ``awa-pg`` package). Run ONLY by the Python of
its own virtual environment (``.awa/venv-awa-pg``): it imports ``awa``, which there is Awa
0.6.9, never this project. Calls, all from Awa's public Python API with its documented
defaults (``AsyncClient.start`` keyword defaults; 50 workers = its ``QueueConfig`` default):

- migrate: ``await client.migrate()``; then one ``start()``/``shutdown()`` of a throwaway
  worker, because a fresh database stays on the ``canonical`` engine until the first worker
  starts and activates queue storage (``storage_status()``), and ``enqueue_many_copy`` needs
  queue storage. Untimed.
- handler: ``@client.task(BenchArgs, kind=kind, queue=queue)``
- worker: ``await client.start([(queue, 50)])``; ``await client.shutdown()``
- bulk insert: ``await client.enqueue_many_copy([BenchArgs(...)...], kind=kind)`` (its
  documented high-volume COPY path)
- one insert: ``await client.insert(BenchArgs(...), kind=kind)``
- scheduled: ``await client.enqueue_many_copy(..., kind=kind, run_at=...)``
- completed: its ``awa.jobs`` view and ``queue_stats()`` took over 150 s per call with
  20,000 finished jobs on this machine, so completions are read from the 0.6.9 tables
  that record them: ``sum(completed_count) FROM awa.receipt_completion_batches`` plus
  ``done_entries`` rows in state ``completed``, through ``client.transaction()``.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from typing import Any

from scenarios import Handler, main

import awa

if not hasattr(awa, "AsyncClient"):  # pragma: no cover - wrong interpreter
    raise SystemExit(f"{awa.__file__} is not Awa 0.6.9 (no AsyncClient): wrong interpreter")

_COMPLETED_SQL = """
SELECT ((SELECT coalesce(sum(completed_count), 0) FROM awa.receipt_completion_batches)
      + (SELECT count(*) FROM awa.done_entries WHERE state = 'completed'))::bigint AS n
"""


@dataclasses.dataclass
class BenchArgs:
    i: int = 0
    t0: float = 0.0
    due: float = 0.0


class AwaReferenceDriver:
    name = "Awa 0.6.9 (awa-pg)"

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = awa.AsyncClient(url)
        self.running = False

    async def setup(self, *, migrate: bool = True) -> None:
        if not migrate:
            return
        await self.client.migrate()
        warm = awa.AsyncClient(self.url)

        @warm.task(BenchArgs, kind="warmup", queue="default")
        async def warmup(job: Any) -> None:
            return None

        await warm.start([("default", 1)])
        await warm.shutdown()
        await warm.close()

    def handler(self, kind: str, fn: Handler, *, queue: str = "default") -> None:
        async def run(job: Any) -> None:
            await fn(dataclasses.asdict(job.args))

        self.client.task(BenchArgs, kind=kind, queue=queue)(run)

    async def start_worker(self, queue: str = "default", concurrency: int = 50) -> None:
        await self.client.start([(queue, concurrency)])
        self.running = True

    async def stop_worker(self) -> None:
        if self.running:
            self.running = False
            await self.client.shutdown()

    async def bulk_insert(self, kind: str, args: list[dict[str, Any]]) -> int:
        return int(await self.client.enqueue_many_copy([BenchArgs(**a) for a in args], kind=kind))

    async def insert_one(self, kind: str, args: dict[str, Any]) -> int:
        return int((await self.client.insert(BenchArgs(**args), kind=kind)).id)

    async def insert_scheduled(
        self, kind: str, args: list[dict[str, Any]], run_at: datetime
    ) -> int:
        return int(
            await self.client.enqueue_many_copy(
                [BenchArgs(**a) for a in args], kind=kind, run_at=run_at
            )
        )

    async def completed_count(self) -> int:
        tx = await self.client.transaction()
        async with tx:
            row = await tx.fetch_one(_COMPLETED_SQL)
        return int(row["n"])

    async def close(self) -> None:
        await self.stop_worker()
        await self.client.close()


def describe() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "system": AwaReferenceDriver.name,
        "awa_file": awa.__file__,
        "awa_pg_version": version("awa-pg"),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    main(AwaReferenceDriver, describe)
