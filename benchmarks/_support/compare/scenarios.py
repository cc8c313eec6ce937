"""The scenarios of ``compare.py``, written once against a small driver interface so the
same code measures this project, pgqueuer 1.6.0 and Awa 0.6.9.

Why a driver: Awa 0.6.9 imports as ``awa`` too, and pgqueuer brings its own dependencies, so
the systems never share an interpreter. Each system gets an adapter script in
``_support/compare/`` (``project.py`` for this checkout, run by the project's Python;
``pgqueuer_adapter.py`` and ``awa069.py``, each run by the Python of its own virtual
environment) that implements ``Driver`` and hands it to ``main``. This module uses the
standard library only, so it imports in every environment.

Protocol: ``python <adapter> <scenario> <url> <json-params>``. A scenario prints one line
``RESULT <json>`` at the end; the crash and idle roles print event lines (``READY``,
``HELD ...``) and run until killed. Times are ``time.perf_counter()`` inside one process, or
``time.time()`` where two processes compare (same host clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["Driver", "main"]

#: A handler gets the job's args as a dict.
Handler = Callable[[dict[str, Any]], Awaitable[None]]

CHUNK = 10_000


class Driver(Protocol):
    """What a system must offer the scenarios (each call uses that system's public API)."""

    name: str

    async def setup(self, *, migrate: bool = True) -> None: ...

    def handler(self, kind: str, fn: Handler, *, queue: str = "default") -> None: ...

    async def start_worker(self, queue: str = "default", concurrency: int = 50) -> None: ...

    async def stop_worker(self) -> None: ...

    async def bulk_insert(self, kind: str, args: list[dict[str, Any]]) -> int: ...

    async def insert_one(self, kind: str, args: dict[str, Any]) -> int: ...

    async def insert_scheduled(
        self, kind: str, args: list[dict[str, Any]], run_at: datetime
    ) -> int: ...

    async def completed_count(self) -> int: ...

    async def close(self) -> None: ...


def _cpu_s() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    return self_.ru_utime + self_.ru_stime


def _machine_cpu_s() -> float | None:
    """CPU seconds used by the whole machine so far (all cores, /proc/stat; None off
    Linux): the drain's cost per job counts PostgreSQL and every process a system runs,
    not only this one (neighbours too, so read it next to ``other_cores``)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], points: tuple[float, ...]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    last = len(ordered) - 1
    out = {}
    for p in points:
        rank = p / 100 * last
        low = int(rank)
        high = min(low + 1, last)
        out[f"p{p:g}"] = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return out


def _ms(values: list[float]) -> dict[str, Any]:
    pct = _pct(values, (50, 95, 99))
    return {
        "count": len(values),
        "p50_ms": round(pct["p50"] * 1000, 2) if pct else None,
        "p95_ms": round(pct["p95"] * 1000, 2) if pct else None,
        "p99_ms": round(pct["p99"] * 1000, 2) if pct else None,
        "max_ms": round(max(values) * 1000, 2) if values else None,
    }


async def _until(predicate: Callable[[], bool], timeout: float, step: float = 0.002) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(step)
    return True


# ------------------------------------------------------------------------- scenarios


async def bulk_enqueue(d: Driver, p: dict[str, Any]) -> dict[str, Any]:
    """``n`` no-op jobs in calls of ``CHUNK``; timed from building the first args to the
    last call returning (committed)."""
    n = int(p["jobs"])
    await d.setup()
    t0 = time.perf_counter()
    stored = 0
    for start in range(0, n, CHUNK):
        stored += await d.bulk_insert(
            "noop", [{"i": i} for i in range(start, min(n, start + CHUNK))]
        )
    seconds = time.perf_counter() - t0
    return {
        "jobs": n,
        "returned": stored,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(n / seconds),
    }


async def drain(d: Driver, p: dict[str, Any]) -> dict[str, Any]:
    """``n`` no-op jobs inserted first (untimed); the clock starts just before the worker
    starts and stops when the database shows all ``n`` completed."""
    n = int(p["jobs"])
    await d.setup()
    handled = 0

    async def noop(args: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1

    d.handler("noop", noop)
    for start in range(0, n, CHUNK):
        await d.bulk_insert("noop", [{"i": i} for i in range(start, min(n, start + CHUNK))])
    cpu0, machine0 = _cpu_s(), _machine_cpu_s()
    t0 = time.perf_counter()
    await d.start_worker(concurrency=int(p.get("concurrency", 50)))
    ok = await _until(lambda: handled >= n, float(p.get("timeout", 300)), 0.005)
    t_handled = time.perf_counter() - t0
    completed = 0
    deadline = time.perf_counter() + 60
    while ok and time.perf_counter() < deadline:
        completed = await d.completed_count()
        if completed >= n:
            break
        await asyncio.sleep(0.01)
    t_written = time.perf_counter() - t0
    cpu, machine1 = _cpu_s() - cpu0, _machine_cpu_s()
    await d.stop_worker()
    machine = None if machine0 is None or machine1 is None else machine1 - machine0
    return {
        "jobs": n,
        "handled": handled,
        "completed_in_db": completed,
        "handled_s": round(t_handled, 3),
        "seconds": round(t_written, 3),
        "handled_per_s": round(handled / t_handled) if t_handled else None,
        "jobs_per_s": round(n / t_written) if completed >= n else None,
        "client_cpu_s": round(cpu, 2),
        "client_cpu_us_per_job": round(cpu / n * 1e6, 1),
        "machine_cpu_s": None if machine is None else round(machine, 2),
        "machine_cpu_ms_per_job": None if machine is None else round(machine / n * 1e3, 4),
        "ok": completed >= n and handled == n,
    }


async def pickup(d: Driver, p: dict[str, Any]) -> dict[str, Any]:
    """An idle worker; one ``insert`` at a time at ``rate``/s for ``seconds``; latency =
    handler start minus the ``perf_counter()`` taken just before the insert call.

    Split in two as well, so that what every system pays alike is visible: ``insert_*``,
    the producer's insert call (its durable commit after an idle gap dominates on a small
    VM), and ``after_insert_*``, handler start minus the insert call's return (the
    system's own dispatch; negative when the handler starts before the producer's call
    has returned, e.g. while its pool is still releasing the connection)."""
    rate, seconds, warmup = float(p["rate"]), float(p["seconds"]), int(p.get("warmup", 20))
    await d.setup()
    lat: list[float] = []
    started: dict[int, float] = {}
    sent: dict[int, float] = {}
    returned: dict[int, float] = {}

    async def stamp(args: dict[str, Any]) -> None:
        now = time.perf_counter()
        lat.append(now - float(args["t0"]))
        started[int(args["i"])] = now

    d.handler("stamp", stamp)
    await d.start_worker()
    await asyncio.sleep(1.0)
    total = int(rate * seconds)
    t0 = time.perf_counter()
    for k in range(total):
        delay = t0 + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[k] = time.perf_counter()
        await d.insert_one("stamp", {"i": k, "t0": sent[k]})
        returned[k] = time.perf_counter()
    await _until(lambda: len(lat) >= total, 30.0, 0.01)
    await d.stop_worker()
    measured = lat[warmup:] if len(lat) > warmup else lat
    steady = [k for k in range(warmup, total) if k in started]
    insert = _ms([returned[k] - sent[k] for k in steady])
    after = _ms([started[k] - returned[k] for k in steady])
    return {
        "rate": rate,
        "inserted": total,
        "started": len(lat),
        "warmup_excluded": min(warmup, len(lat)),
        **_ms(measured),
        **{f"insert_{key}": value for key, value in insert.items() if key.endswith("_ms")},
        **{f"after_insert_{key}": v for key, v in after.items() if key.endswith("_ms")},
        "ok": len(lat) == total,
    }


async def promotion(d: Driver, p: dict[str, Any]) -> dict[str, Any]:
    """``n`` jobs scheduled ahead with ``run_at`` spread evenly (in ``groups`` distinct
    instants) over ``spread`` seconds starting ``lead`` seconds after the insert; lateness =
    handler start (wall clock) minus the job's ``run_at``."""
    n, lead, spread = int(p["jobs"]), float(p["lead"]), float(p["spread"])
    # No more instants than jobs: each group but the last gets ``n // groups`` jobs.
    groups = max(1, min(int(p.get("groups", 100)), n))
    await d.setup()
    late: list[float] = []

    async def tick(args: dict[str, Any]) -> None:
        late.append(time.time() - float(args["due"]))

    d.handler("tick", tick)
    await d.start_worker()
    await asyncio.sleep(1.0)
    base = time.time() + lead
    per = max(1, n // groups)
    inserted = 0
    for g in range(groups):
        due = base + g * spread / groups
        count = per if g < groups - 1 else n - inserted
        args = [{"i": inserted + k, "due": due} for k in range(count)]
        inserted += await d.insert_scheduled("tick", args, datetime.fromtimestamp(due, UTC))
    insert_done_before_first_due = time.time() < base
    await _until(lambda: len(late) >= n, lead + spread + 120.0, 0.01)
    await d.stop_worker()
    return {
        "jobs": n,
        "lead_s": lead,
        "spread_s": spread,
        "groups": groups,
        "inserted_before_first_due": insert_done_before_first_due,
        "negative": sum(1 for v in late if v < 0),
        **_ms(late),
        "min_ms": round(min(late) * 1000, 2) if late else None,
        "ok": len(late) == n,
    }


# ------------------------------------------------------------------------ idle roles


async def install(d: Driver, p: dict[str, Any]) -> dict[str, Any]:
    """Create the system's schema and exit (its backends' counters flush on exit)."""
    await d.setup()
    return {"installed": True}


async def idle_worker(d: Driver, p: dict[str, Any]) -> None:
    """One worker with a handler and nothing queued, run until killed; the parent counts
    the database's transactions meanwhile."""
    await d.setup(migrate=False)

    async def noop(args: dict[str, Any]) -> None:
        return None

    d.handler("noop", noop)
    await d.start_worker()
    print("READY", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- crash-rescue roles


async def crash_leader(d: Driver, p: dict[str, Any]) -> None:
    """Started first, so it leads maintenance; serves only a queue nobody uses."""
    await d.setup()

    async def idle(args: dict[str, Any]) -> None:
        return None

    d.handler("idle", idle, queue="idle")
    await d.start_worker(queue="idle", concurrency=1)
    print("READY", flush=True)
    await asyncio.Event().wait()


async def crash_victim(d: Driver, p: dict[str, Any]) -> None:
    """Inserts ``n`` jobs whose handler never returns and holds them until killed."""
    n = int(p["jobs"])
    await d.setup(migrate=False)
    started: list[int] = []

    async def hang(args: dict[str, Any]) -> None:
        started.append(int(args["i"]))
        await asyncio.Event().wait()

    d.handler("hang", hang)
    await d.start_worker()
    await d.bulk_insert("hang", [{"i": i} for i in range(n)])
    if not await _until(lambda: len(started) >= n, 60.0, 0.005):
        print(f"FAILED held {len(started)} of {n}", flush=True)
    print("HELD " + json.dumps(sorted(started)), flush=True)
    await asyncio.Event().wait()


async def crash_survivor(d: Driver, p: dict[str, Any]) -> None:
    """A worker for the same kind whose handler returns at once; prints each re-run."""
    await d.setup(migrate=False)

    async def finish(args: dict[str, Any]) -> None:
        print(f"RAN {int(args['i'])} {time.time():.6f}", flush=True)

    d.handler("hang", finish)
    await d.start_worker()
    print("READY", flush=True)
    await asyncio.Event().wait()


SCENARIOS: dict[str, Callable[[Driver, dict[str, Any]], Awaitable[Any]]] = {
    "bulk_enqueue": bulk_enqueue,
    "drain": drain,
    "pickup": pickup,
    "promotion": promotion,
    "install": install,
    "idle_worker": idle_worker,
    "crash_leader": crash_leader,
    "crash_victim": crash_victim,
    "crash_survivor": crash_survivor,
}


def main(
    driver_factory: Callable[[str], Driver],
    describe: Callable[[], dict[str, Any]],
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run,
) -> None:
    """Entry point of an adapter script: ``<scenario> <url> <json-params>``. ``runner``
    runs the event loop: a system whose own runner uses another loop (pgqueuer's ``pgq
    run``: uvloop) is measured on that loop."""
    scenario, url, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if scenario == "describe":
        print("RESULT " + json.dumps(describe()), flush=True)
        return

    async def run() -> None:
        d = driver_factory(url)
        cpu0 = _cpu_s()
        try:
            result = await SCENARIOS[scenario](d, params)
        finally:
            await d.close()
        if result is not None:
            result["process_cpu_s"] = round(_cpu_s() - cpu0, 3)
            print("RESULT " + json.dumps(result), flush=True)

    runner(run())
