"""One bulk-enqueue measurement of one checkout, in its own process (``bulk_insert.py``).

Run as ``python bulk_child.py <checkout> <url> <jobs> <chunk>``: imports ``awa`` from
``<checkout>/src`` (so an A/B can measure two trees against one server, alternately), does
what ``compare.py``'s bulk scenario does (``insert_many([client.params("noop", {"i": i})
...])``, ``chunk`` jobs per call) and prints ``RESULT {json}``: wall time split into
building the params and the ``insert_many`` calls, this process's CPU over the timed part
(``time.process_time``), and the CPU of the client's PostgreSQL backends over it
(``/proc/<pid>/schedstat``, nanoseconds; the WAL writer and checkpointer are not counted).
Standard library plus the checkout's ``awa`` only: the same file works for any tree.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def backend_cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            total += int(f.read().split()[0])
    return total / 1e9


async def measure(url: str, n: int, chunk: int) -> dict[str, Any]:
    import awa
    from awa.db import connect

    client = awa.Client(url)

    @client.handler("noop")
    async def noop(ctx: Any) -> None:
        return None

    conn = await connect(url)
    try:
        await conn.execute("TRUNCATE awa.jobs")
        await conn.execute("CHECKPOINT")
        async with client:
            # Warm-up (untimed): the pool's connections exist, statements are prepared.
            await client.insert_many([client.params("noop", {"i": -1})])
            pids = [
                int(r["pid"])
                for r in await conn.fetch(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
            build = insert = 0.0
            server0, cpu0, t0 = backend_cpu_s(pids), time.process_time(), time.perf_counter()
            for start in range(0, n, chunk):
                t1 = time.perf_counter()
                items = [
                    client.params("noop", {"i": i}) for i in range(start, min(n, start + chunk))
                ]
                t2 = time.perf_counter()
                await client.insert_many(items)
                t3 = time.perf_counter()
                build += t2 - t1
                insert += t3 - t2
            wall = time.perf_counter() - t0
            cpu, server = time.process_time() - cpu0, backend_cpu_s(pids) - server0
        stored = int(await conn.fetchval("SELECT count(*) FROM awa.jobs"))
    finally:
        await conn.close()
    return {
        "jobs": n,
        "stored": stored,
        "jobs_per_s": round(n / wall),
        "build_s": round(build, 4),
        "insert_many_s": round(insert, 4),
        "client_cpu_us_per_job": round(cpu / n * 1e6, 3),
        "backend_cpu_us_per_job": round(server / n * 1e6, 3),
        "backends": len(pids),
    }


def main() -> None:
    checkout, url, n, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, str(Path(checkout).resolve() / "src"))
    result = asyncio.run(measure(url, n, chunk))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
