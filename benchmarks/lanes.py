"""awa maintenance-lane benchmark (a script, not a test): the figures issue 3 accepts on.

Scenarios, each in a fresh, migrated database that is dropped afterwards, every runtime with
the default ``RuntimeConfig`` and ``MaintenanceConfig`` except where named:

- ``lateness``: N no-op jobs (default 1,000) inserted ahead of time with ``run_at`` evenly
  spread over a few seconds in the future, run by one runtime, in lane mode ``split`` and
  ``single``, with no hygiene load and under a hygiene overload (an extra hygiene branch
  whose body holds one of its lane's connections in ``pg_sleep`` for 10× its interval).
  Promotion lateness of a job = ``attempted_at - run_at`` read back from ``awa.jobs_done``:
  the claim's ``now()`` minus the time it was due, i.e. promotion *and* wake-up *and* claim
  (a job cannot be claimed before it is promoted, so this bounds promotion lateness from
  above and is what a user sees). The handler's own start minus ``run_at`` is reported too.
- ``crash``: a worker subprocess (default config) holding jobs is killed with SIGKILL; the
  figure is the time from the kill until every job it held is completed by another runtime.
  Two cases: the victim is a *follower* (the maintenance leader survives and rescues) and
  the victim is the *leader* (a follower must win the election before anyone rescues).
- ``idle``: one default runtime with nothing queued; PostgreSQL transactions per second of
  the benchmark database (``xact_commit + xact_rollback`` in ``pg_stat_database``, sampled
  from a connection to another database), minus the same window with no runtime at all;
  and where they come from: the server's statement log (embedded server only) grouped into
  transactions per backend, plus ``pg_stat_statements`` calls.

Run ``python benchmarks/lanes.py --help``; ``--quick`` is a ~1 minute smoke run.
Results: a table on stdout and JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support import REPO_ROOT
from _support.cli import add_output_args, add_server_args, parse_scenarios
from _support.cpu import CpuMeter, wait_for_quiet
from _support.machine import describe_machine, machine_info
from _support.pg_stats import pg_stat_statements_top, reset_pg_stats, xact_count
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from _support.statement_log import (
    StatementNamer,
    attribute_transactions,
    group_transactions,
    parse_statement_log,
    read_segment,
)
from _support.stats import ms_summary
from awa.config import MaintenanceConfig, RuntimeConfig
from awa.db import connect
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.branches.rescue_stale_heartbeats import RescueStaleHeartbeats

log = logging.getLogger("awa.bench.lanes")

SCENARIOS = ("lateness", "crash", "idle")

# Aims from issue 3.
LATENESS_AIM_MS = 30.0
CRASH_AIM_S = 3.0
IDLE_AIM_TX_PER_S = 5.0

#: The overload branch: interval 0.1 s, body 1 s (10× its interval).
OVERLOAD_INTERVAL = 0.1
OVERLOAD_FACTOR = 10.0

CRASH_JOBS = 20

# --------------------------------------------------------------------------- lateness


class HygieneOverload(Branch):
    """A hygiene branch that takes 10× its interval: it holds one connection of its lane's
    pool in ``pg_sleep``, the simplest stand-in for cleanup behind a huge backlog. The lane
    treats it like any branch (overrun episodes, duty-cycle cooldown)."""

    name = "bench_hygiene_overload"
    lane = HYGIENE
    default_interval = OVERLOAD_INTERVAL
    default_timeout = 30.0

    def __init__(self, body_s: float, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.body_s = body_s

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        async with ctx.store.db.pool.acquire() as conn:
            await conn.execute("SELECT pg_sleep($1::float8)", self.body_s)
        return BranchResult({"slept": 1})


async def _wait_db(url: str, sql: str, want: int, timeout: float) -> int:
    """Poll ``sql`` (a count) until it reaches ``want`` or ``timeout``; return the last count."""
    conn = await connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            got = int(await conn.fetchval(sql))
            if got >= want or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def bench_lateness(
    url: str,
    mode: str,
    overload: bool,
    n: int,
    spread: float,
    *,
    lead: float,
    settle: float,
    server_pid: int | None,
    wait_quiet: float,
) -> dict[str, Any]:
    client = awa.Client(url)
    handler_lateness: list[float] = []
    all_started = anyio.Event()

    @client.handler("tick")
    async def tick(ctx: awa.JobContext) -> None:
        handler_lateness.append((datetime.now(UTC) - ctx.job.run_at).total_seconds())
        if len(handler_lateness) >= n:
            all_started.set()

    body = OVERLOAD_FACTOR * OVERLOAD_INTERVAL
    branches: list[Branch] = [HygieneOverload(body)] if overload else []
    async with client:
        runtime = awa.Runtime(
            client, RuntimeConfig(), maintenance=MaintenanceConfig(mode=mode), branches=branches
        )
        async with runtime:
            leader = runtime.leader
            assert leader is not None
            with anyio.fail_after(30):
                await leader.wait_until_leader()
            # Let an overload reach its steady state (K=3 slow samples flip it to DELAYED,
            # after which the lane paces it to a bounded duty cycle).
            await anyio.sleep(settle)
            waited = await wait_for_quiet(wait_quiet) if wait_quiet else 0.0
            promote = leader.stats["promote_scheduled"]
            promote_runs0 = promote.runs
            slow = leader.stats.get(HygieneOverload.name)
            slow_runs0 = slow.runs if slow else 0
            meter = CpuMeter(server_pid).start()
            base = datetime.now(UTC) + timedelta(seconds=lead)
            items = [
                client.params("tick", {"i": i}, run_at=base + timedelta(seconds=i * spread / n))
                for i in range(n)
            ]
            t0 = time.perf_counter()
            await client.insert_many(items)
            insert_s = time.perf_counter() - t0
            with anyio.move_on_after(lead + spread + 60):
                await all_started.wait()
            completed = await _wait_db(
                url, "SELECT count(*) FROM awa.jobs_done WHERE kind = 'tick'", n, 15.0
            )
            meter.stop()
            window = meter.wall
            promote_runs = promote.runs - promote_runs0
            slow_runs = (slow.runs - slow_runs0) if slow else 0
            slow_episodes = slow.tracker.episodes if slow else 0
            lanes = sorted(leader.lanes)
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM attempted_at - run_at)::float8 AS late "
            "FROM awa.jobs_done WHERE kind = 'tick'"
        )
        attempts = int(await conn.fetchval("SELECT coalesce(max(attempt), 0) FROM awa.jobs_done"))
    finally:
        await conn.close()
    claim_lateness = [float(r["late"]) for r in rows]
    summary = ms_summary(claim_lateness, with_min=True)
    out: dict[str, Any] = {
        "mode": mode,
        "load": "overload" if overload else "none",
        "lanes": lanes,
        "jobs": n,
        "spread_s": spread,
        "lead_s": lead,
        "insert_many_s": round(insert_s, 3),
        **summary,
        "negative": sum(1 for v in claim_lateness if v < 0),
        "handler_start": ms_summary(handler_lateness, with_min=True),
        "completed": completed,
        "promote_runs": promote_runs,
        "window_s": round(window, 2),
        **meter.summary(),
        "waited_for_quiet_s": waited,
        "ok": completed == n and len(claim_lateness) == n and attempts == 1,
    }
    if overload:
        out["overload"] = {
            "branch_interval_s": OVERLOAD_INTERVAL,
            "body_s": body,
            "runs_in_window": slow_runs,
            "busy_fraction": round(min(1.0, slow_runs * body / window), 2) if window else None,
            "overrun_episodes": slow_episodes,
        }
    if mode == "split":
        out["aim_p99_ms"] = LATENESS_AIM_MS
        out["aim_met"] = summary["p99_ms"] is not None and summary["p99_ms"] <= LATENESS_AIM_MS
    return out


# ------------------------------------------------------------------------------ crash

# The victim: a default runtime (worker + maintenance candidate) whose handler never returns.
VICTIM = """
import sys

import anyio

import awa


async def main(url: str) -> None:
    client = awa.Client(url)

    @client.handler("hang")
    async def hang(ctx: awa.JobContext) -> None:
        await anyio.sleep_forever()

    async with client:
        async with awa.Runtime(client) as runtime:
            print(runtime.instance_id, flush=True)
            await anyio.sleep_forever()


anyio.run(main, sys.argv[1])
"""

_CRASH_POLL = """
SELECT (SELECT count(*) FROM awa.jobs
         WHERE id = ANY ($1::bigint[]) AND state = 'running' AND claimed_by = $2) AS held,
       (SELECT count(*) FROM awa.jobs_done
         WHERE id = ANY ($1::bigint[]) AND state = 'completed') AS done
"""


async def _poll(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


class Victim:
    """The worker subprocess to be killed (stderr kept in a temp file for diagnosis)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proc: asyncio.subprocess.Process | None = None
        self.instance_id = ""
        fd, self._stderr_path = tempfile.mkstemp(prefix="awa-lanes-victim-", suffix=".log")
        self._stderr = os.fdopen(fd, "w+b")

    async def start(self) -> None:
        src = str(REPO_ROOT / "src")
        env = dict(os.environ)
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else "")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            VICTIM,
            self.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        except TimeoutError:
            line = b""
        self.instance_id = line.decode().strip()
        if not self.instance_id:
            raise RuntimeError(f"victim did not start: {self.stderr_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._stderr.close()
        with contextlib.suppress(OSError):
            os.unlink(self._stderr_path)

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]


async def crash_once(url: str, victim_role: str, phase: float) -> dict[str, Any]:
    """One kill -9: ``victim_role`` is ``follower`` (a surviving leader rescues, another
    worker re-runs) or ``leader`` (a follower must first win the election). ``phase``: seconds
    between the survivors being ready and the kill (spreads the kill over the rescue or
    election period across repeats)."""
    raw = await connect(url)
    victim = Victim(url)
    reran: dict[int, float] = {}
    producer = awa.Client(url)
    stack = contextlib.AsyncExitStack()
    try:
        await stack.enter_async_context(producer)
        if victim_role == "follower":
            # The leader: a default runtime on a queue with no work, started first.
            lead_client = awa.Client(url)

            @lead_client.handler("bench_unused", queue="bench_unused")
            async def unused(ctx: awa.JobContext) -> None:
                return None

            await stack.enter_async_context(lead_client)
            lead_rt = awa.Runtime(lead_client, RuntimeConfig(queues={"bench_unused": 1}))
            await stack.enter_async_context(lead_rt)
            assert lead_rt.leader is not None
            with anyio.fail_after(30):
                await lead_rt.leader.wait_until_leader()
        await victim.start()
        if victim_role == "leader":

            async def victim_leads() -> bool:
                who = await raw.fetchval("SELECT instance_id FROM awa.maintenance_leader")
                return bool(who == victim.instance_id)

            await _poll(victim_leads, 30, "the victim to lead")
        ids = await producer.insert_many(
            [producer.params("hang", {"i": i}) for i in range(CRASH_JOBS)]
        )

        async def victim_holds_all() -> bool:
            row = await raw.fetchrow(_CRASH_POLL, ids, victim.instance_id)
            assert row is not None
            return int(row["held"]) == len(ids)

        await _poll(victim_holds_all, 30, "the victim to claim every job")

        # The survivor that re-runs the jobs: worker-only next to the surviving leader, or a
        # full default runtime (worker + election follower) when the leader is the victim.
        survivor = awa.Client(url)

        @survivor.handler("hang")
        async def finish(ctx: awa.JobContext) -> None:
            reran.setdefault(ctx.job.id, time.monotonic())

        await stack.enter_async_context(survivor)
        survivor_rt = awa.Runtime(survivor, run_maintenance=victim_role == "leader")
        await stack.enter_async_context(survivor_rt)
        await asyncio.sleep(phase)

        victim.kill()
        killed = time.monotonic()
        released = leader_at = None
        done_at = None
        while True:
            row = await raw.fetchrow(_CRASH_POLL, ids, victim.instance_id)
            assert row is not None
            now = time.monotonic()
            if released is None and int(row["held"]) == 0:
                released = now - killed
            if (
                leader_at is None
                and survivor_rt.leader is not None
                and survivor_rt.leader.is_leader
            ):
                leader_at = now - killed
            if int(row["done"]) == len(ids):
                done_at = now - killed
                break
            if now - killed > 60:
                break
            await asyncio.sleep(0.01)
        attempts = await raw.fetch(
            "SELECT attempt, errors FROM awa.jobs_done WHERE id = ANY ($1::bigint[])", ids
        )
    finally:
        await stack.aclose()
        await victim.close()
        await raw.close()
    rescued_by = Counter(
        "presence" if "presence" in str(r["errors"]) else "other" for r in attempts
    )
    return {
        "victim": victim_role,
        "phase_s": round(phase, 3),
        "jobs": len(ids),
        "completed_s": None if done_at is None else round(done_at, 3),
        "released_s": None if released is None else round(released, 3),
        "rerun_started_s": round(max(reran.values()) - killed, 3) if reran else None,
        "survivor_leader_s": None if leader_at is None else round(leader_at, 3),
        "rescued_via": dict(rescued_by),
        "ok": done_at is not None and all(int(r["attempt"]) == 2 for r in attempts),
    }


async def bench_crash(server_url: str, repeat: int) -> dict[str, Any]:
    """Each case ``repeat`` times, a fresh database each; kills spread evenly over the
    period that decides the delay (the rescue interval, or the election interval)."""
    defaults = MaintenanceConfig()
    periods = {
        "follower": RescueStaleHeartbeats.default_interval,
        "leader": defaults.election_interval,
    }
    out: dict[str, Any] = {}
    for role, period in periods.items():
        runs = []
        for k in range(repeat):
            phase = (k + 0.5) / repeat * period
            print(f"    crash: victim {role}, phase {phase:.2f}s", file=sys.stderr, flush=True)
            async with fresh_database(server_url, "crash") as db:
                runs.append(await crash_once(db, role, phase))
        times = [r["completed_s"] for r in runs if r["completed_s"] is not None]
        out[f"victim_{role}"] = {
            "phase_period_s": period,
            "completed_s": [r["completed_s"] for r in runs],
            "median_s": round(statistics.median(times), 3) if times else None,
            "max_s": max(times) if times else None,
            "aim_s": CRASH_AIM_S,
            "aim_met": bool(times) and len(times) == len(runs) and max(times) <= CRASH_AIM_S,
            "runs": runs,
            "ok": all(r["ok"] for r in runs),
        }
    return out


# ------------------------------------------------------------------------------- idle


def _pgss_calls(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {r["query"]: int(r["calls"]) for r in rows}


async def bench_idle(server: BenchServer, window: float, settle: float) -> dict[str, Any]:
    namer = StatementNamer()
    log_file = server.log_file
    async with fresh_database(server.url, "idle") as db:
        dbname = urlsplit(db).path.lstrip("/")
        # Sampling from the server's maintenance database adds nothing to the benchmark
        # database's counters.
        admin = await connect(server.url)
        try:
            if log_file is not None:
                await admin.execute(f"ALTER DATABASE \"{dbname}\" SET log_statement = 'all'")
            # Creates the extension in the benchmark database (before any window).
            await reset_pg_stats(db)
            await asyncio.sleep(1.0)

            print(f"    idle: background, {window:g}s", file=sys.stderr, flush=True)
            b0, tb0 = await xact_count(admin, dbname), time.perf_counter()
            await asyncio.sleep(window)
            b1, tb1 = await xact_count(admin, dbname), time.perf_counter()
            background = {"xacts": b1 - b0, "seconds": round(tb1 - tb0, 2)}
            background["tx_per_s"] = round(background["xacts"] / (tb1 - tb0), 3)

            client = awa.Client(db)

            @client.handler("noop")
            async def noop(ctx: awa.JobContext) -> None:
                return None

            async with client:
                runtime = awa.Runtime(client)
                async with runtime:
                    leader = runtime.leader
                    assert leader is not None
                    with anyio.fail_after(30):
                        await leader.wait_until_leader()
                    print(
                        f"    idle: runtime, settle {settle:g}s + {window:g}s",
                        file=sys.stderr,
                        flush=True,
                    )
                    await asyncio.sleep(settle)
                    pgss0 = _pgss_calls(await pg_stat_statements_top(db, 1000))
                    await asyncio.sleep(0.5)
                    runs0 = {name: s.runs for name, s in leader.stats.items()}
                    offset0 = log_file.stat().st_size if log_file is not None else 0
                    meter = CpuMeter(server.server_pid).start()
                    r0, t0 = await xact_count(admin, dbname), time.perf_counter()
                    await asyncio.sleep(window)
                    r1, t1 = await xact_count(admin, dbname), time.perf_counter()
                    meter.stop()
                    offset1 = log_file.stat().st_size if log_file is not None else 0
                    runs1 = {name: s.runs for name, s in leader.stats.items()}
                    await asyncio.sleep(0.5)
                    pgss1 = _pgss_calls(await pg_stat_statements_top(db, 1000))
        finally:
            await admin.close()
    seconds = t1 - t0
    raw_tx = r1 - r0
    net = raw_tx / seconds - background["tx_per_s"]
    out: dict[str, Any] = {
        "window_s": round(seconds, 2),
        "settle_s": settle,
        "background": background,
        "runtime_xacts": raw_tx,
        "raw_tx_per_s": round(raw_tx / seconds, 3),
        "net_tx_per_s": round(net, 3),
        "aim_tx_per_s": IDLE_AIM_TX_PER_S,
        "aim_met": net <= IDLE_AIM_TX_PER_S,
        "branch_runs_in_window": {k: runs1[k] - runs0.get(k, 0) for k in runs1},
        **meter.summary(),
    }
    # Statement calls in the window (pg_stat_statements is updated at once, unlike
    # pg_stat_database, whose per-backend counters are flushed at most once a second and
    # up to ~10 s late for a backend that goes quiet).
    # Several texts can share a label (the pool reset's four statements, BEGIN and COMMIT):
    # such a label counts its most-called text, i.e. resets or transactions, not statements.
    calls: Counter[str] = Counter()
    for q, after in pgss1.items():
        label = namer.name(q)
        calls[label] = max(calls[label], after - pgss0.get(q, 0))
    out["statements_per_s"] = [
        {
            "statement": label,
            "source": namer.source(label),
            "calls": c,
            "calls_per_s": round(c / seconds, 3),
        }
        for label, c in calls.most_common()
        if c > 0
    ]
    if log_file is not None:
        text = read_segment(log_file, offset0, offset1)
        entries = parse_statement_log(text)
        txs = group_transactions(entries)
        out["log"] = {
            "statements": len(entries),
            "transactions": len(txs),
            "tx_per_s": round(len(txs) / seconds, 3),
            "backends": len({pid for pid, _ in entries}),
        }
        out["by_source"] = attribute_transactions(txs, namer, seconds)
    else:
        out["log"] = None
        out["by_source"] = []
    out["ok"] = raw_tx >= 0
    return out


# ------------------------------------------------------------------------------ driver


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="awa maintenance-lane benchmark (issue 3 acceptance)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_server_args(p, data_dir="bench-pgdata-lanes")
    p.add_argument(
        "--quick",
        action="store_true",
        help="~1 minute smoke run (fewer jobs, one crash per case, 10 s idle windows); "
        "saves no JSON unless --save (then as lanes-quick-*.json)",
    )
    p.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
    p.add_argument("--jobs", type=int, default=1000, help="lateness: jobs scheduled")
    p.add_argument(
        "--spread", type=float, default=3.0, help="lateness: seconds over which they fall due"
    )
    p.add_argument(
        "--lead", type=float, default=1.0, help="lateness: seconds from insert to first due"
    )
    p.add_argument("--repeat", type=int, default=3, help="crash: kills per case")
    p.add_argument(
        "--idle-window",
        type=float,
        default=60.0,
        help="idle: seconds sampled, with and without a runtime (60 s covers one run of "
        "every 60 s hygiene branch)",
    )
    p.add_argument(
        "--idle-settle",
        type=float,
        default=12.0,
        help="idle: seconds between start and sampling (> 10 s: a backend that goes quiet "
        "flushes its pg_stat_database counters up to 10 s late, so start-up must be "
        "flushed before the window opens)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="lateness: before each timed run wait up to this long for a quiet second",
    )
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 500)
        args.spread = min(args.spread, 2.0)
        args.repeat = 1
        args.idle_window = min(args.idle_window, 10.0)
        args.idle_settle = min(args.idle_settle, 11.0)
    args.scenario_list = parse_scenarios(p, args.only, SCENARIOS)
    return args


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    info = await machine_info(server, durability)
    results: dict[str, Any] = {}
    for scenario in args.scenario_list:
        print(f"... {scenario}", file=sys.stderr, flush=True)
        if scenario == "lateness":
            lateness: dict[str, Any] = {}
            for mode in ("split", "single"):
                for overload in (False, True):
                    key = f"{mode}/{'overload' if overload else 'none'}"
                    print(f"    lateness: {key}", file=sys.stderr, flush=True)
                    async with fresh_database(server.url, "lateness") as db:
                        lateness[key] = await bench_lateness(
                            db,
                            mode,
                            overload,
                            args.jobs,
                            args.spread,
                            lead=args.lead,
                            settle=4.0 if overload else 1.0,
                            server_pid=server.server_pid,
                            wait_quiet=args.wait_quiet,
                        )
            results["lateness"] = lateness
        elif scenario == "crash":
            results["crash"] = await bench_crash(server.url, args.repeat)
        elif scenario == "idle":
            results["idle"] = await bench_idle(server, args.idle_window, args.idle_settle)
    return {
        "benchmark": "lanes",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "parameters": {
            "jobs": args.jobs,
            "spread_s": args.spread,
            "lead_s": args.lead,
            "repeat": args.repeat,
            "idle_window_s": args.idle_window,
            "idle_settle_s": args.idle_settle,
            "overload": {
                "interval_s": OVERLOAD_INTERVAL,
                "body_s": OVERLOAD_FACTOR * OVERLOAD_INTERVAL,
            },
            "crash_jobs": CRASH_JOBS,
            "scenarios": args.scenario_list,
            "wait_quiet": args.wait_quiet,
        },
        "results": results,
        "aims": _aims(results),
    }


def _aims(results: dict[str, Any]) -> dict[str, Any]:
    aims: dict[str, Any] = {}
    for key, r in results.get("lateness", {}).items():
        if "aim_met" in r:
            aims[f"lateness {key} p99 <= {LATENESS_AIM_MS:g} ms"] = r["aim_met"]
    for key, r in results.get("crash", {}).items():
        aims[f"crash {key} every run <= {CRASH_AIM_S:g} s"] = r["aim_met"]
    if "idle" in results:
        aims[f"idle net <= {IDLE_AIM_TX_PER_S:g} tx/s"] = results["idle"]["aim_met"]
    return aims


# ------------------------------------------------------------------------------ output


def _f(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    r = payload["results"]
    lines = [
        f"awa lanes benchmark ({payload['mode']}) {m['date']}",
        f"  {describe_machine(m)}",
        f"  load average at start: {m['load_average_at_start']}",
    ]
    if "lateness" in r:
        lines += [
            "",
            "promotion lateness, attempted_at - run_at (ms)",
            f"  {'mode/load':<18} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"
            f"  {'handler p99':>11}  {'jobs':>5}  {'other cores':>11}  aim",
        ]
        for key, x in r["lateness"].items():
            aim = "" if "aim_met" not in x else ("ok" if x["aim_met"] else "MISSED")
            lines.append(
                f"  {key:<18} {_f(x['p50_ms']):>7} {_f(x['p90_ms']):>7} {_f(x['p99_ms']):>7}"
                f" {_f(x['max_ms']):>7}  {_f(x['handler_start']['p99_ms']):>11}"
                f"  {x['completed']:>5}  {_f(x.get('other_cores'), '.2f'):>11}  {aim}"
            )
            if "overload" in x:
                o = x["overload"]
                lines.append(
                    f"  {'':<18} overload: {o['runs_in_window']} bodies of {o['body_s']:g}s, "
                    f"busy {_f(o['busy_fraction'], '.0%')}, episodes {o['overrun_episodes']}"
                )
    if "crash" in r:
        lines += ["", "crash rescue after kill -9 (s from kill to all jobs completed elsewhere)"]
        for key, c in r["crash"].items():
            aim = "ok" if c["aim_met"] else "MISSED"
            lines.append(
                f"  {key:<16} runs {c['completed_s']}  median {_f(c['median_s'], '.2f')}"
                f"  max {_f(c['max_s'], '.2f')}  {aim}"
            )
            for run_ in c["runs"]:
                lines.append(
                    f"  {'':<16} phase {run_['phase_s']:.2f}s:"
                    f" released {_f(run_['released_s'], '.2f')}"
                    f", survivor leader {_f(run_['survivor_leader_s'], '.2f')}"
                    f", re-run {_f(run_['rerun_started_s'], '.2f')}"
                    f", completed {_f(run_['completed_s'], '.2f')}"
                )
    if "idle" in r:
        i = r["idle"]
        aim = "ok" if i["aim_met"] else "MISSED"
        lines += [
            "",
            f"idle runtime, {i['window_s']:g}s window (pg_stat_database xact_commit+rollback)",
            f"  with runtime {i['raw_tx_per_s']:.2f} tx/s, background "
            f"{i['background']['tx_per_s']:.2f} tx/s, net {i['net_tx_per_s']:.2f} tx/s  {aim}",
        ]
        if i.get("log"):
            lg = i["log"]
            lines.append(
                f"  statement log: {lg['transactions']} transactions ({lg['tx_per_s']:.2f}/s), "
                f"{lg['statements']} statements, {lg['backends']} backends"
            )
            lines.append(f"  {'source':<52} {'tx/s':>6}  of which pool resets")
            for s in i["by_source"]:
                lines.append(
                    f"  {s['source'][:52]:<52} {s['tx_per_s']:>6.2f}  {s['of_which_pool_resets']}"
                )
        else:
            lines.append("  pg_stat_statements calls/s (no server log to group transactions):")
            for st in i["statements_per_s"][:15]:
                lines.append(f"  {st['statement'][:52]:<52} {st['calls_per_s']:>6.2f}")
        runs = {k: v for k, v in i["branch_runs_in_window"].items() if v}
        lines.append(f"  branch runs in window: {runs}")
    aims = payload.get("aims", {})
    if aims:
        lines += ["", "aims:"]
        lines += [f"  {'ok    ' if met else 'MISSED'} {name}" for name, met in aims.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    payload = run_and_report(args, run, render, "lanes", SCENARIOS)
    failed = []
    for name, value in payload["results"].items():
        groups = value.values() if name in ("lateness", "crash") else [value]
        if not all(g["ok"] for g in groups):
            failed.append(name)
    if failed:
        print(f"FAILED scenarios (jobs lost or wrong): {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
