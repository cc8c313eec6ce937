"""Side-by-side comparison of this project with pgqueuer 1.6.0 and Awa 0.6.9 (a script, not
a test).

Why this shape: Awa 0.6.9 ships as ``awa-pg`` and also imports as ``awa``, so it can never be
installed next to this project, and pgqueuer brings its own dependencies. Each peer lives
in its own virtual environment (``.awa/venv-pgqueuer``, ``.awa/venv-awa-pg``, created on
first use with the pinned version) and every system is driven the same way: as
subprocesses running one shared scenario module (``_support/compare/scenarios.py``)
through a per-system adapter (``project.py``, ``pgqueuer_adapter.py``, ``awa069.py`` beside
it). Each run gets a fresh, empty database of the same embedded PostgreSQL; each system
installs its schema itself (untimed) and runs with its documented defaults.

Scenarios: bulk enqueue (jobs/s), drain of 20,000 no-op jobs (completed jobs/s, CPU per
job), pickup latency at a steady insert rate (p50/p99), promotion lateness of scheduled
jobs (p50/p99/max), crash rescue (kill -9 of a worker holding jobs; seconds until another
worker completed them), idle (transactions/s an idle worker costs its database). Prints a
table with ours ÷ peer for every figure and the aims of issue 16
(``_support/compare/table.py``), writes JSON to ``benchmarks/results/compare-*.json``.
``--quick`` is a smaller smoke run without the crash scenario (the peers' rescue waits
for a stale heartbeat: 30-60 s for pgqueuer, ~120 s for Awa). ``--systems`` skips peers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support.cli import add_output_args, parse_scenarios
from _support.compare.runner import Adapter, run_crash, run_idle, run_simple
from _support.compare.systems import SYSTEMS, ensure_venv
from _support.compare.table import compare_table, render
from _support.machine import machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database

SCENARIOS = ("bulk_enqueue", "drain", "pickup", "promotion", "crash", "idle")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="this project vs pgqueuer 1.6.0 and Awa 0.6.9, side by side (issue 16)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small smoke run, no crash scenario")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {SCENARIOS}")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"subset of {tuple(SYSTEMS)}")
    p.add_argument("--awa-venv", type=Path, default=SYSTEMS["awa069"].venv)
    p.add_argument("--pgqueuer-venv", type=Path, default=SYSTEMS["pgqueuer"].venv)
    p.add_argument(
        "--data-dir",
        default=os.path.join(".awa", "bench-pgdata-compare"),
        help="embedded PostgreSQL data directory (ignored with AWA_DATABASE_URL)",
    )
    p.add_argument("--fast", action="store_true", help="fsync/synchronous_commit off")
    p.add_argument("--concurrency", type=int, default=50, help="drain: every system's cap")
    p.add_argument("--bulk-jobs", type=int, default=100_000)
    p.add_argument("--drain-jobs", type=int, default=20_000)
    p.add_argument("--pickup-rate", type=float, default=200.0, help="inserts per second")
    p.add_argument("--pickup-seconds", type=float, default=20.0)
    p.add_argument("--promotion-jobs", type=int, default=1000)
    p.add_argument("--promotion-lead", type=float, default=2.0)
    p.add_argument("--promotion-spread", type=float, default=3.0)
    p.add_argument("--crash-jobs", type=int, default=20)
    p.add_argument("--crash-phase", type=float, default=1.0, help="s from survivor ready to kill")
    p.add_argument("--crash-timeout", type=float, default=300.0)
    p.add_argument("--idle-window", type=float, default=20.0, help="idle: seconds sampled")
    p.add_argument(
        "--pause",
        type=float,
        default=15.0,
        help="seconds of rest before every run, whichever system: on this VM a run right "
        "after a heavy one (drain) measured a pickup p99 ~1.5x its rested value",
    )
    p.add_argument(
        "--idle-settle",
        type=float,
        default=11.0,
        help="idle: seconds between the worker's start and its window (> 10 s: a backend "
        "that goes quiet flushes its counters up to 10 s late)",
    )
    add_output_args(p)
    args = p.parse_args(argv)
    chosen = parse_scenarios(p, args.scenarios, SCENARIOS)
    args.system_list = parse_scenarios(p, args.systems, tuple(SYSTEMS))
    if "project" not in args.system_list:
        p.error("--systems must include project (every ratio is ours / peer)")
    if args.quick:
        args.bulk_jobs = min(args.bulk_jobs, 20_000)
        args.drain_jobs = min(args.drain_jobs, 5_000)
        args.pickup_seconds = min(args.pickup_seconds, 5.0)
        args.promotion_jobs = min(args.promotion_jobs, 300)
        args.idle_window = min(args.idle_window, 5.0)
        args.pause = min(args.pause, 1.0)
        if args.scenarios == ",".join(SCENARIOS):
            chosen = [s for s in chosen if s != "crash"]
    args.scenario_list = chosen
    # A run without every system must not replace compare-latest.json.
    args.partial = set(args.system_list) != set(SYSTEMS)
    return args


def scenario_params(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    return {
        "bulk_enqueue": {"jobs": args.bulk_jobs},
        "drain": {"jobs": args.drain_jobs, "concurrency": args.concurrency},
        "pickup": {"rate": args.pickup_rate, "seconds": args.pickup_seconds, "warmup": 20},
        "promotion": {
            "jobs": args.promotion_jobs,
            "lead": args.promotion_lead,
            "spread": args.promotion_spread,
            "groups": 100,
        },
        "crash": {
            "jobs": args.crash_jobs,
            "phase": args.crash_phase,
            "timeout": args.crash_timeout,
        },
        "idle": {"window": args.idle_window, "settle": args.idle_settle},
    }[scenario]


async def describe(pythons: dict[str, str]) -> dict[str, Any]:
    """Each system's own account of what runs (version, file, Python); a peer at another
    version than pinned stops the run."""
    out = {}
    for key, python in pythons.items():
        adapter = Adapter(python, SYSTEMS[key], "describe", "unused", {})
        await adapter.start()
        out[key] = await adapter.result(60)
        system = SYSTEMS[key]
        if system.version_key and out[key].get(system.version_key) != system.version:
            raise SystemExit(f"expected {system.label}: {out[key]}")
    return out


async def run_one(
    args: argparse.Namespace, server: BenchServer, key: str, python: str, scenario: str
) -> dict[str, Any]:
    params = scenario_params(args, scenario)
    system, pid = SYSTEMS[key], server.server_pid
    await asyncio.sleep(args.pause)  # every run starts rested (--pause)
    async with fresh_database(server.url, f"cmp_{key}", migrate_schema=False) as db:
        try:
            if scenario == "crash":
                return await run_crash(python, system, db, params, pid)
            if scenario == "idle":
                return await run_idle(python, system, server.url, db, params, pid)
            return await run_simple(python, system, scenario, db, params, pid)
        except (RuntimeError, TimeoutError) as exc:
            return {"error": str(exc), "ok": False}


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    info = await machine_info(server, durability)
    venvs = {"pgqueuer": args.pgqueuer_venv, "awa069": args.awa_venv}
    pythons = {k: ensure_venv(SYSTEMS[k], venvs.get(k)) for k in args.system_list}
    systems = await describe(pythons)
    results: dict[str, dict[str, Any]] = {}
    for k, scenario in enumerate(args.scenario_list):
        results[scenario] = {}
        # Rotate which system goes first, so slow drift on a shared machine is not
        # always charged to the same one.
        order = args.system_list if k % 2 == 0 else list(reversed(args.system_list))
        for key in order:
            print(f"... {scenario}: {SYSTEMS[key].label}", file=sys.stderr, flush=True)
            results[scenario][key] = await run_one(args, server, key, pythons[key], scenario)
    return {
        "benchmark": "compare",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "systems_run": args.system_list,
        "systems": systems,
        "parameters": {s: scenario_params(args, s) for s in args.scenario_list},
        "pause_s": args.pause,
        "results": results,
        "comparison": compare_table(results, args.system_list),
    }


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    payload = run_and_report(args, run, render, "compare", SCENARIOS)
    broken = [
        f"{s}/{key}"
        for s, per_system in payload["results"].items()
        for key, r in per_system.items()
        if key == "project" and not r.get("ok")
    ]
    if broken:
        print(f"FAILED (this project's runs): {broken}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
