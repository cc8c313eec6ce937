"""Insert latency from blocking code: ``awa.SyncClient`` against the async client and the
status quo it replaces (a script, not a test; issue 18, ADR 023).

Four ways to insert one job, each timed per call (``perf_counter`` around the call, in the
thread that makes it), on the same durable server and database:

- ``async``: ``await client.insert(...)`` on a connected ``awa.Client``, one after another
  (the floor: one pooled round trip and a commit);
- ``sync_1``: ``SyncClient.insert`` from one thread (the same, plus the hop to the loop
  thread and back);
- ``async_8``: 8 tasks awaiting ``client.insert`` at once (the async floor for ``sync_8``);
- ``sync_8``: ``SyncClient.insert`` from 8 threads at once (a threaded WSGI server's load;
  per-call latency includes waiting for the loop, the pool and the GIL);
- ``asyncio_run``: ``asyncio.run`` per insert, opening and closing a client each time (what
  a Flask view had to do before ``SyncClient``).

Scenarios run interleaved for ``--rounds`` rounds after a warm-up, so a drift of the machine
shows in every column rather than in one. The aim: ``sync_1`` p50 at most 1.5x ``async``.
Run ``python benchmarks/sync_insert.py``; ``--quick`` is a seconds-long smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support.cli import add_output_args, add_server_args
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from _support.stats import ms_summary

SCENARIOS = ("async", "sync_1", "async_8", "sync_8", "asyncio_run")
THREADS = 8
#: ``asyncio_run`` costs ~50x a pooled insert: it runs this fraction of the others' count.
SLOW_SHARE = 10


def timed(insert: Callable[[], object], n: int) -> tuple[list[float], float]:
    """Per-call durations of ``n`` calls, and the wall time of all of them."""
    out = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        insert()
        out.append(time.perf_counter() - t0)
    return out, time.perf_counter() - start


async def async_round(client: awa.Client, n: int) -> tuple[list[float], float]:
    out = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await client.insert("bench", {"i": i})
        out.append(time.perf_counter() - t0)
    return out, time.perf_counter() - start


async def concurrent_round(client: awa.Client, n: int, tasks: int) -> tuple[list[float], float]:
    """``n`` inserts split over ``tasks`` tasks of one loop."""
    start = time.perf_counter()
    shares = await asyncio.gather(*(async_round(client, n // tasks) for _ in range(tasks)))
    return [d for durations, _ in shares for d in durations], time.perf_counter() - start


def threaded_round(sync: awa.SyncClient, n: int, threads: int) -> tuple[list[float], float]:
    """``n`` inserts split over ``threads`` threads started together."""
    gate = threading.Barrier(threads + 1)

    def work(share: int) -> list[float]:
        gate.wait()
        return timed(lambda: sync.insert("bench", {"i": 0}), share)[0]

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(work, n // threads) for _ in range(threads)]
        gate.wait()
        start = time.perf_counter()
        durations = [d for f in futures for d in f.result()]
        return durations, time.perf_counter() - start


def asyncio_run_round(url: str, n: int) -> tuple[list[float], float]:
    async def insert_once() -> None:
        async with awa.Client(url, pool_size=1) as client:
            await client.insert("bench", {"i": 0})

    return timed(lambda: asyncio.run(insert_once()), n)


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    samples: dict[str, list[float]] = {s: [] for s in args.scenario_list}
    walls: dict[str, float] = dict.fromkeys(args.scenario_list, 0.0)
    async with awa.Client(url) as client:
        with awa.SyncClient(url) as sync:
            await async_round(client, args.warmup)  # both pools full and warm
            await asyncio.to_thread(timed, lambda: sync.insert("bench"), args.warmup)
            await asyncio.to_thread(threaded_round, sync, args.warmup, THREADS)
            for _ in range(args.rounds):
                for scenario in args.scenario_list:
                    if scenario == "async":
                        got = await async_round(client, args.per_round)
                    elif scenario == "async_8":
                        got = await concurrent_round(client, args.per_round, THREADS)
                    elif scenario == "sync_1":
                        got = await asyncio.to_thread(
                            timed, lambda: sync.insert("bench", {"i": 0}), args.per_round
                        )
                    elif scenario == "sync_8":
                        got = await asyncio.to_thread(threaded_round, sync, args.per_round, THREADS)
                    else:
                        n = max(1, args.per_round // SLOW_SHARE)
                        got = await asyncio.to_thread(asyncio_run_round, url, n)
                    samples[scenario] += got[0]
                    walls[scenario] += got[1]
    results: dict[str, Any] = {}
    for scenario, values in samples.items():
        results[scenario] = {
            **ms_summary(values, with_count=True, with_min=True),
            "jobs_per_s": round(len(values) / walls[scenario], 1),
        }
    if "async" in results and "sync_1" in results:
        results["sync_1_p50_over_async_p50"] = round(
            results["sync_1"]["p50_ms"] / results["async"]["p50_ms"], 3
        )
    return results


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    info = await machine_info(server, await server.ensure_durability())
    async with fresh_database(server.url, "sync_insert") as url:
        results = await measure(url, args)
    return {
        "benchmark": "sync_insert",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "params": {
            "rounds": args.rounds,
            "per_round": args.per_round,
            "warmup": args.warmup,
            "threads": THREADS,
            "asyncio_run_per_round": max(1, args.per_round // SLOW_SHARE),
            "scenarios": args.scenario_list,
        },
        "results": results,
    }


def render(payload: dict[str, Any]) -> str:
    r = payload["results"]
    lines = [
        describe_machine(payload["machine"]),
        "insert latency per call (durable server; one job per call)",
        f"{'scenario':<12} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'jobs/s':>9}",
    ]
    for scenario in SCENARIOS:
        if scenario in r:
            s = r[scenario]
            cells = " ".join(f"{s[k]:>8.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
            lines.append(f"{scenario:<12} {s['n']:>6} {cells} {s['jobs_per_s']:>9,.0f}")
    if "sync_1_p50_over_async_p50" in r:
        ratio = r["sync_1_p50_over_async_p50"]
        verdict = "within" if ratio <= 1.5 else "OVER"
        lines.append(f"sync_1 p50 / async p50 = {ratio:.2f} ({verdict} the 1.5x aim)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_server_args(p, data_dir="bench-pgdata")
    add_output_args(p)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every scenario")
    p.add_argument("--per-round", type=int, default=600, help="inserts per scenario per round")
    p.add_argument("--warmup", type=int, default=200, help="unmeasured inserts first")
    p.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {SCENARIOS}"
    )
    p.add_argument("--quick", action="store_true", help="2 rounds of 80: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.per_round, args.warmup = 2, 80, 16
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    run_and_report(args, run, render, "sync-insert", SCENARIOS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
