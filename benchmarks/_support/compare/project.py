"""``compare.py`` adapter for this checkout (run by the project's Python, ``src/`` first on
``sys.path``). Every call is the public API a user would write, with default
``RuntimeConfig`` / ``MaintenanceConfig`` except the queue map where a scenario names one:

- migrate: ``await client.migrate()``
- handler: ``@client.handler(kind, queue=...)``
- worker: ``awa.Runtime(client, RuntimeConfig(queues={queue: 50}))`` (50 is the default)
- bulk insert: ``client.insert_batch(kind, args_list)`` (one COPY; the call for many jobs
  of one kind, as pgqueuer's ``enqueue`` takes lists; before session 14
  ``client.insert_many([client.params(kind, args) ...])``, which builds a params object
  per job)
- one insert: ``client.insert(kind, args)``
- scheduled: ``client.insert_many([client.params(kind, args, run_at=...) ...])``
- completed: ``count(*) FROM awa.jobs_done WHERE state = 'completed'``
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from scenarios import Handler, main

import awa
from awa.config import RuntimeConfig
from awa.db import connect


class ProjectDriver:
    name = "awa (this project)"

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = awa.Client(url)
        self.runtime: awa.Runtime | None = None
        self._conn: Any = None

    async def setup(self, *, migrate: bool = True) -> None:
        if migrate:
            await self.client.migrate()
        await self.client.connect()
        self._conn = await connect(self.url)

    def handler(self, kind: str, fn: Handler, *, queue: str = "default") -> None:
        async def run(ctx: awa.JobContext) -> None:
            await fn(ctx.job.args)

        self.client.handler(kind, queue=queue)(run)

    async def start_worker(self, queue: str = "default", concurrency: int = 50) -> None:
        self.runtime = awa.Runtime(self.client, RuntimeConfig(queues={queue: concurrency}))
        await self.runtime.start()

    async def stop_worker(self) -> None:
        if self.runtime is not None:
            await self.runtime.shutdown()
            self.runtime = None

    async def bulk_insert(self, kind: str, args: list[dict[str, Any]]) -> int:
        return len(await self.client.insert_batch(kind, args))

    async def insert_one(self, kind: str, args: dict[str, Any]) -> int:
        return (await self.client.insert(kind, args)).id

    async def insert_scheduled(
        self, kind: str, args: list[dict[str, Any]], run_at: datetime
    ) -> int:
        items = [self.client.params(kind, a, run_at=run_at) for a in args]
        return len(await self.client.insert_many(items))

    async def completed_count(self) -> int:
        return int(
            await self._conn.fetchval(
                "SELECT count(*) FROM awa.jobs_done WHERE state = 'completed'"
            )
        )

    async def close(self) -> None:
        await self.stop_worker()
        if self._conn is not None:
            await self._conn.close()
        await self.client.close()


def describe() -> dict[str, Any]:
    return {
        "system": ProjectDriver.name,
        "awa_file": awa.__file__,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    main(ProjectDriver, describe)
