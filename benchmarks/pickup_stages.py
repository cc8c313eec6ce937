"""Where a pickup's time goes when the insert claims the job (a script, not a test; issue
16, ADR 045).

    python benchmarks/pickup_stages.py [--rate 200] [--seconds 20]

One client and its runtime in this process (default settings, queue ``default``); one
``client.insert`` at a time at ``--rate`` per second, as ``compare.py``'s pickup scenario
does. Stamps inside the process (``perf_counter``), per job, in ms:

- ``producer``: the insert call → ``QueueDispatcher.insert_reserved`` entered (params, the
  reservation);
- ``hop``: → the insert's task started in the executions tier;
- ``acquire``: → the pooled connection in hand, the statement about to be sent;
- ``statement``: ``insert_claiming``, its durable commit included;
- ``start``: statement returned → the handler running;
- ``pickup``: the insert call → the handler running (what ``compare.py`` reports).

Also the slowest 1 % of pickups split the same way, and the GC pauses that overlapped
them. Hooks are class patches made before the runtime starts (``src/`` has no benchmark
code). Writes ``results/pickup-stages-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Sequence
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support.cli import add_output_args, add_server_args
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from _support.stats import ms_summary
from awa.store.jobs import Jobs
from awa.worker.dispatcher import QueueDispatcher

SCENARIOS = ("pickup_stages",)
STAGES = ("producer", "hop", "acquire", "statement", "start", "pickup")


class Stamps:
    """Per job (its ``i`` arg): when each hooked point was passed."""

    def __init__(self) -> None:
        self.at: dict[str, dict[int, float]] = {k: {} for k in ("reserved", "task", "sent")}
        self.returned: dict[int, float] = {}
        self.gc: list[tuple[float, float]] = []
        self._gc_started = 0.0

    def install(self) -> None:
        stamps = self
        reserved, run, claiming = (
            QueueDispatcher.insert_reserved,
            QueueDispatcher._insert_then_run,
            Jobs.insert_claiming,
        )

        async def insert_reserved(self: Any, store: Any, params: Any, now: Any) -> Any:
            stamps.at["reserved"][params.args["i"]] = time.perf_counter()
            return await reserved(self, store, params, now)

        async def insert_then_run(self: Any, store: Any, params: Any, *rest: Any) -> None:
            stamps.at["task"][params.args["i"]] = time.perf_counter()
            await run(self, store, params, *rest)

        async def insert_claiming(self: Any, params: Any, *a: Any, **k: Any) -> Any:
            stamps.at["sent"][params.args["i"]] = time.perf_counter()
            out = await claiming(self, params, *a, **k)
            stamps.returned[params.args["i"]] = time.perf_counter()
            return out

        QueueDispatcher.insert_reserved = insert_reserved  # type: ignore[method-assign]
        QueueDispatcher._insert_then_run = insert_then_run  # type: ignore[method-assign,assignment]
        Jobs.insert_claiming = insert_claiming  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc.append((self._gc_started, time.perf_counter()))


async def measure(url: str, args: argparse.Namespace, stamps: Stamps) -> dict[str, Any]:
    client = awa.Client(url)
    started: dict[int, float] = {}
    sent: dict[int, float] = {}
    total = int(args.rate * args.seconds)
    all_started = asyncio.Event()

    @client.handler("stamp")
    async def stamp(ctx: awa.JobContext) -> None:
        started[int(ctx.args["i"])] = time.perf_counter()
        if len(started) >= total:
            all_started.set()

    await client.migrate()
    async with client, awa.Runtime(client) as runtime:
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        for k in range(total):
            delay = t0 + k / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[k] = time.perf_counter()
            await client.insert("stamp", {"i": k})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_started.wait(), 30)
        [dispatcher] = runtime.dispatchers
        claimed_on_insert = dispatcher.claimed
    at = stamps.at
    jobs = [
        k
        for k in range(args.warmup, total)
        if k in started and all(k in at[p] for p in at) and k in stamps.returned
    ]
    parts: dict[str, list[float]] = {
        "producer": [at["reserved"][k] - sent[k] for k in jobs],
        "hop": [at["task"][k] - at["reserved"][k] for k in jobs],
        "acquire": [at["sent"][k] - at["task"][k] for k in jobs],
        "statement": [stamps.returned[k] - at["sent"][k] for k in jobs],
        "start": [started[k] - stamps.returned[k] for k in jobs],
        "pickup": [started[k] - sent[k] for k in jobs],
    }
    ms = {name: [v * 1e3 for v in values] for name, values in parts.items()}
    slowest = sorted(range(len(jobs)), key=lambda i: ms["pickup"][i])[-max(1, len(jobs) // 100) :]
    overlapping = sum(
        1 for i in slowest if any(a < started[jobs[i]] and b > sent[jobs[i]] for a, b in stamps.gc)
    )
    return {
        "inserted": total,
        "measured": len(jobs),
        "claimed_on_insert": claimed_on_insert,
        **{name: ms_summary(values, with_count=True) for name, values in parts.items()},
        "slowest_1pct_mean_ms": {
            name: round(statistics.mean(ms[name][i] for i in slowest), 3) for name in STAGES
        },
        "gc": {"pauses": len(stamps.gc), "overlapping_slowest": overlapping},
    }


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    info = await machine_info(server, await server.ensure_durability())
    stamps = Stamps()
    stamps.install()
    async with fresh_database(server.url, "pickup_stages") as url:
        result = await measure(url, args, stamps)
    return {
        "benchmark": "pickup_stages",
        "machine": info,
        "params": {k: getattr(args, k) for k in ("rate", "seconds", "warmup")},
        "results": {"pickup_stages": result},
    }


def render(payload: dict[str, Any]) -> str:
    r = payload["results"]["pickup_stages"]
    lines = [
        describe_machine(payload["machine"]),
        f"pickup stages: {r['measured']} of {r['inserted']} jobs measured, "
        f"{r['claimed_on_insert']} claimed (at insert or by the dispatcher)",
        f"{'stage':<10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'slowest 1%':>11}",
    ]
    for name in STAGES:
        s = r[name]
        if s.get("n"):
            cells = [s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"]]
            mean = r["slowest_1pct_mean_ms"][name]
            lines.append(f"{name:<10} " + " ".join(f"{v:>8.3f}" for v in cells) + f" {mean:>11.3f}")
    g = r["gc"]
    lines.append(f"gc pauses {g['pauses']}, {g['overlapping_slowest']} overlapping the slowest 1%")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_server_args(p, data_dir="bench-pgdata")
    add_output_args(p)
    p.add_argument("--rate", type=float, default=200.0, help="inserts per second")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=int, default=20, help="first jobs left out")
    p.add_argument("--quick", action="store_true", help="3 seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = 3.0
    args.scenario_list = list(SCENARIOS)
    run_and_report(args, run, render, "pickup-stages", SCENARIOS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
