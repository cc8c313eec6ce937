"""Where a scheduled job's lateness goes, stage by stage (a script, not a test; issue 16).

    python benchmarks/promotion_stages.py [--jobs 1000] [--instants 100] [--spread 3]

One runtime with default settings; ``--jobs`` no-op jobs scheduled over ``--spread``
seconds in ``--instants`` distinct due times, starting ``--lead`` seconds ahead. For each
due instant, by the wall clock (the same host's clock as the jobs' ``run_at``):

- ``wake``: due time → the ``promote_scheduled`` branch body started (the lane's timer,
  the next-due estimate it was set from, the leader thread getting the GIL);
- ``promote``: the branch body's length (one fenced statement since issue 16);
- ``notify``: the body's end → the ``awa_jobs`` NOTIFY reached this process's listener
  (negative: the NOTIFY is delivered at commit, before the body has returned);
- ``handler``: that notification → the first handler of the instant started (dispatch,
  claim, task start).

Plus ``lateness`` (handler start − ``run_at``, every job; what ``compare.py`` reports),
``sleep_overshoot`` (how much later than asked the lane's sleeps ended) and the GC pauses
seen meanwhile. Hooks are class patches made before the runtime starts, so ``src/`` has
no benchmark code. Writes ``results/promotion-stages-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support.cli import add_output_args, add_server_args
from _support.machine import describe_machine, machine_info
from _support.pickup_trace import PickupTrace
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from _support.stats import percentiles
from awa.maintenance.branch import BranchContext, BranchResult
from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from awa.maintenance.lane import BranchStats, Lane

SCENARIOS = ("promotion_stages",)
POINTS = (50, 90, 99)


class Hooks:
    """Branch bodies and lane sleeps of ``promote_scheduled``, timed by class patches."""

    def __init__(self) -> None:
        self.bodies: list[tuple[float, float, int]] = []  # start, end (wall), promoted
        self.overshoot_ms: list[float] = []

    def install(self) -> None:
        hooks = self
        run_once, sleep_or_wake = PromoteScheduled.run_once, Lane._sleep_or_wake

        async def timed_run_once(branch: PromoteScheduled, ctx: BranchContext) -> BranchResult:
            t0 = time.time()
            result = await run_once(branch, ctx)
            hooks.bodies.append((t0, time.time(), int(result.rows.get("promoted", 0))))
            return result

        async def timed_sleep(lane: Lane, stats: BranchStats, delay: float) -> None:
            t0 = time.monotonic()
            await sleep_or_wake(lane, stats, delay)
            slept = time.monotonic() - t0
            # A sleep cut short by a wake-up (an insert's awa_due) is not a timer's overshoot.
            if stats.branch.name == PromoteScheduled.name and slept >= delay:
                hooks.overshoot_ms.append((slept - delay) * 1000)

        PromoteScheduled.run_once = timed_run_once  # type: ignore[method-assign]
        Lane._sleep_or_wake = timed_sleep  # type: ignore[method-assign]
        self._undo = (run_once, sleep_or_wake)

    def remove(self) -> None:
        PromoteScheduled.run_once, Lane._sleep_or_wake = self._undo  # type: ignore[method-assign]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    pct = percentiles(values, POINTS)
    return {
        "count": len(values),
        **{f"{k}_ms": round(v, 3) for k, v in pct.items()},
        "max_ms": round(max(values), 3),
    }


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    client = awa.Client(url)
    started: list[tuple[float, float]] = []  # (due, handler start), wall clock
    everything = asyncio.Event()
    expected = max(1, args.jobs // args.instants) * args.instants

    @client.handler("tick")
    async def tick(ctx: awa.JobContext) -> None:
        started.append((float(ctx.args["due"]), time.time()))
        if len(started) >= expected:
            everything.set()

    hooks, trace = Hooks(), PickupTrace()
    hooks.install()
    try:
        with trace.installed():
            async with client, awa.Runtime(client):
                await asyncio.sleep(1.0)
                trace.gc_pauses.clear()  # not the start's own collect-and-freeze (ADR 021)
                base = time.time() + args.lead
                per = max(1, args.jobs // args.instants)
                for g in range(args.instants):
                    due = base + g * args.spread / args.instants
                    run_at = datetime.fromtimestamp(due, UTC)
                    items = [client.params("tick", {"due": due}, run_at=run_at)] * per
                    await client.insert_many(items)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everything.wait(), args.lead + args.spread + 30)
    finally:
        hooks.remove()
    return stages(started, hooks, trace)


def stages(started: list[tuple[float, float]], hooks: Hooks, trace: PickupTrace) -> dict[str, Any]:
    """Per due instant: the first body that ended after it with rows, the first NOTIFY
    after that body began, the first handler of the instant. ``trace.notified`` holds
    ``perf_counter`` stamps, so they are shifted onto the wall clock first."""
    shift = time.time() - time.perf_counter()
    notified = [t + shift for t in trace.notified]
    bodies = sorted(b for b in hooks.bodies if b[2] > 0)
    first_start: dict[float, float] = {}
    for due, at in started:
        first_start[due] = min(at, first_start.get(due, at))
    parts: dict[str, list[float]] = {"wake": [], "promote": [], "notify": [], "handler": []}
    for due, first in sorted(first_start.items()):
        body = next((b for b in bodies if b[1] >= due), None)
        if body is None:
            continue
        i = bisect.bisect_left(notified, body[0])
        heard = notified[i] if i < len(notified) else body[1]
        parts["wake"].append((body[0] - due) * 1000)
        parts["promote"].append((body[1] - body[0]) * 1000)
        parts["notify"].append((heard - body[1]) * 1000)
        parts["handler"].append((first - heard) * 1000)
    lateness = [(at - due) * 1000 for due, at in started]
    return {
        "jobs_started": len(started),
        "early": sum(1 for v in lateness if v < 0),
        "lateness": summary(lateness),
        **{name: summary(values) for name, values in parts.items()},
        "sleep_overshoot": summary(hooks.overshoot_ms),
        "gc": trace.gc_summary(),
    }


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    info = await machine_info(server, await server.ensure_durability())
    async with fresh_database(server.url, "promotion_stages") as url:
        result = await measure(url, args)
    return {
        "benchmark": "promotion_stages",
        "machine": info,
        "params": {k: getattr(args, k) for k in ("jobs", "instants", "lead", "spread")},
        "results": {"promotion_stages": result},
    }


def render(payload: dict[str, Any]) -> str:
    r = payload["results"]["promotion_stages"]
    lines = [
        describe_machine(payload["machine"]),
        f"promotion stages: {r['jobs_started']} jobs started, {r['early']} early",
        f"{'stage':<16} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name in ("lateness", "wake", "promote", "notify", "handler", "sleep_overshoot"):
        s = r[name]
        if s.get("count"):
            cells = [s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"]]
            lines.append(f"{name:<16} " + " ".join(f"{v:>8.2f}" for v in cells))
    g = r["gc"]
    lines.append(f"gc pauses {g['pauses']} (max {g['max_ms']} ms)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_server_args(p, data_dir="bench-pgdata")
    add_output_args(p)
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--instants", type=int, default=100)
    p.add_argument("--lead", type=float, default=2.0, help="seconds to the first due time")
    p.add_argument("--spread", type=float, default=3.0, help="seconds the due times cover")
    p.add_argument("--quick", action="store_true", help="200 jobs over 1 s")
    args = p.parse_args(argv)
    if args.quick:
        args.jobs, args.instants, args.spread = 200, 20, 1.0
    args.scenario_list = list(SCENARIOS)
    run_and_report(args, run, render, "promotion-stages", SCENARIOS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
