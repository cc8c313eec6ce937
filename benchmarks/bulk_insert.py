"""Micro-benchmark of the bulk enqueue path, step by step (a script, not a test).

Times, per chunk of ``--chunk`` jobs, in one fresh database on a long-lived server:

- ``build``: ``client.params("noop", {"i": i})`` for the chunk (validation + JSON encoding);
- ``insert_many``: ``client.insert_many`` of the chunk (reserve ids, records, COPY, commit);
- with ``--steps``, the parts of one ``insert_many`` measured on their own: reserving ids,
  encoding the COPY rows, and the COPY of the encoded rows into ``awa.jobs``;
- with ``--profile``, a cProfile of build + insert (top functions by own time).

Run ``python benchmarks/bulk_insert.py --data-dir .awa/bench-x``; ``--rounds`` repeats the
whole measurement (truncating ``awa.jobs`` in between) so noise shows up as spread.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support.server import BenchServer, fresh_database
from awa.clock import utcnow
from awa.db import connect
from awa.db.queries import sql_text
from awa.store.copy_stream import COPY_COLUMNS, CopyEncoder


async def one_round(url: str, n: int, chunk: int, profile: bool) -> dict[str, float]:
    client = awa.Client(url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    build = insert = 0.0
    prof = cProfile.Profile() if profile else None
    async with client:
        conn = await connect(url)
        try:
            await conn.execute("TRUNCATE awa.jobs")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        if prof:
            prof.enable()
        for start in range(0, n, chunk):
            t0 = time.perf_counter()
            items = [client.params("noop", {"i": i}) for i in range(start, min(n, start + chunk))]
            t1 = time.perf_counter()
            await client.insert_many(items)
            t2 = time.perf_counter()
            build += t1 - t0
            insert += t2 - t1
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return {"build_s": build, "insert_s": insert, "total_jobs_per_s": n / (build + insert)}


async def steps(url: str, chunk: int) -> dict[str, float]:
    """The parts of one insert_many, each timed on its own (median of several chunks):
    reserving ids, encoding the COPY rows (client CPU only), and the COPY into ``awa.jobs``
    of the already-encoded stream (mostly PostgreSQL's work)."""
    client = awa.Client(url)
    out: dict[str, list[float]] = {"reserve": [], "encode": [], "copy": []}
    async with client:
        store = client.store
        async with store.db.acquire() as c:
            for _ in range(7):
                params = [client.params("noop", {"i": i}) for i in range(chunk)]
                async with c.transaction():
                    t0 = time.perf_counter()
                    ids = list(await c.fetchval(sql_text("reserve_job_ids"), chunk))
                    t1 = time.perf_counter()
                    encoder = CopyEncoder(utcnow())
                    data = encoder.encode_all(params, ids)
                    t2 = time.perf_counter()
                    await c.copy_to_table(
                        "jobs",
                        schema_name="awa",
                        columns=COPY_COLUMNS,
                        source=memoryview(data),  # bytes would be taken for a path
                        format="binary",
                    )
                    t3 = time.perf_counter()
                out["reserve"].append(t1 - t0)
                out["encode"].append(t2 - t1)
                out["copy"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in out.items()}


async def main_async(args: argparse.Namespace, server: BenchServer) -> None:
    async with fresh_database(server.url, "bulk") as url:
        if args.steps:
            s = await steps(url, args.chunk)
            print(
                f"per chunk of {args.chunk:,}: "
                + ", ".join(f"{k} {v * 1000:.1f}ms" for k, v in s.items())
            )
        results = []
        for r in range(args.rounds):
            res = await one_round(url, args.jobs, args.chunk, args.profile and r == 0)
            results.append(res)
            print(
                f"round {r}: build {res['build_s']:.3f}s insert {res['insert_s']:.3f}s "
                f"total {res['total_jobs_per_s']:,.0f} jobs/s"
            )
        if len(results) > 1:

            def med(key: str) -> Any:
                return statistics.median(x[key] for x in results)

            print(
                f"median: build {med('build_s'):.3f}s insert {med('insert_s'):.3f}s "
                f"total {med('total_jobs_per_s'):,.0f} jobs/s"
            )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=".awa/bench")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", action="store_true")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    server = BenchServer(args.data_dir, durable=True)
    server.start()
    try:
        asyncio.run(main_async(args, server))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
