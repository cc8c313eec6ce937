"""awa throughput and latency benchmark (a script, not a test).

Scenarios, each in a fresh, migrated database that is dropped afterwards:

- ``bulk_enqueue``: ``client.insert_many`` of N no-op jobs in chunks → inserted jobs/s.
- ``drain``: N no-op jobs pre-inserted, then a ``Runtime`` with concurrency C and claim batch
  B runs them all → completed jobs/s (completions counted in the handler, recorded in the
  database, and confirmed with ``count(*)`` on ``awa.jobs_done``).
- ``pickup_latency``: an idle runtime, a producer inserting single jobs at a steady rate →
  handler start minus the moment just before ``insert`` (same process, ``perf_counter``).
- ``explain``: ``EXPLAIN (ANALYZE, BUFFERS)`` of ``claim_batch`` over ~20k available jobs
  (rolled back), without and with table statistics, custom and generic plan; checks that the
  claim reads ``jobs_claim_idx``.

Run ``python benchmarks/throughput.py --help``; ``--quick`` is a seconds-long smoke run.
Results: a table on stdout and JSON in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support.cli import add_output_args, add_server_args, parse_scenarios
from _support.cpu import CpuMeter, wait_for_quiet
from _support.instrument import CallStats, instrumented
from _support.machine import machine_info
from _support.pg_stats import pg_stat_statements_top, reset_pg_stats, wal_io_snapshot
from _support.pickup_trace import PickupTrace, latency_stages
from _support.results import run_and_report
from _support.server import BenchServer, checkpoint, fresh_database
from _support.stats import percentiles
from awa.db import connect
from awa.db.queries import sql_text
from awa.store.jobs import Jobs

log = logging.getLogger("awa.bench.throughput")

SCENARIOS = ("bulk_enqueue", "drain", "pickup_latency", "explain")
DEFAULT_SCENARIOS = ("bulk_enqueue", "drain", "pickup_latency", "explain")

# Defaults chosen from a sweep on a 2-core machine (see benchmarks/README.md).
DEFAULT_CONCURRENCY = 500
DEFAULT_CLAIM_BATCH = 200

LATENCY_POINTS = (50, 90, 95, 99, 99.9)


async def insert_noops(client: awa.Client, n: int, chunk: int) -> None:
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        await client.insert_many([client.params("noop", {"i": i}) for i in range(start, stop)])


# ----------------------------------------------------------------------------- scenarios


async def bench_bulk_enqueue(
    url: str, n: int, chunk: int, server_pid: int | None, wait_quiet: float = 0.0
) -> dict[str, Any]:
    client = awa.Client(url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    build_s = insert_s = 0.0
    chunk_s: list[float] = []
    async with client:
        await checkpoint(url)
        waited = await wait_for_quiet(wait_quiet) if wait_quiet else 0.0
        meter = CpuMeter(server_pid).start()
        t_start = time.perf_counter()
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            t0 = time.perf_counter()
            items = [client.params("noop", {"i": i}) for i in range(start, stop)]
            t1 = time.perf_counter()
            ids = await client.insert_many(items)
            t2 = time.perf_counter()
            assert len(ids) == stop - start
            build_s += t1 - t0
            insert_s += t2 - t1
            chunk_s.append(t2 - t0)
        elapsed = time.perf_counter() - t_start
        meter.stop()
        conn = await connect(url)
        try:
            stored = int(await conn.fetchval("SELECT count(*) FROM awa.jobs"))
        finally:
            await conn.close()
    return {
        "jobs": n,
        "chunk": chunk,
        "seconds": round(elapsed, 4),
        "jobs_per_s": round(n / elapsed),
        "params_build_s": round(build_s, 4),
        "insert_many_s": round(insert_s, 4),
        "insert_only_jobs_per_s": round(n / insert_s),
        "slowest_chunk_s": round(max(chunk_s), 4),
        **meter.summary(),
        "waited_for_quiet_s": waited,
        "stored": stored,
        "ok": stored == n,
    }


async def bench_drain(
    url: str,
    n: int,
    concurrency: int,
    claim_batch: int,
    *,
    chunk: int,
    pg_stats: bool,
    timeout: float,
    server_pid: int | None,
    wait_quiet: float = 0.0,
) -> dict[str, Any]:
    client = awa.Client(url)
    handled = 0
    all_handled = asyncio.Event()

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            all_handled.set()

    with instrument_jobs() as calls:
        async with client:
            await insert_noops(client, n, chunk)
            await checkpoint(url)
            if pg_stats:
                await reset_pg_stats(url)
            wal0 = await wal_io_snapshot(url) if pg_stats else {}
            runtime = awa.Runtime(
                client, awa.RuntimeConfig(queues={"default": concurrency}, claim_batch=claim_batch)
            )
            waited = await wait_for_quiet(wait_quiet) if wait_quiet else 0.0
            meter = CpuMeter(server_pid).start()
            t_start = time.perf_counter()
            await runtime.start()
            t_started = time.perf_counter()
            error = None
            try:
                await asyncio.wait_for(all_handled.wait(), timeout)
                t_handled = time.perf_counter()
                await _wait_recorded(runtime, url, n)
                t_recorded = time.perf_counter()
            except TimeoutError:
                t_handled = t_recorded = time.perf_counter()
                error = f"timed out after {timeout}s with {handled}/{n} handled"
            meter.stop()
            applied = _applied(runtime)
            claimed = sum(d.claimed for d in runtime.dispatchers)
            await runtime.shutdown(grace=5)
            wal1 = await wal_io_snapshot(url) if pg_stats else {}
            statements = await pg_stat_statements_top(url) if pg_stats else []
            conn = await connect(url)
            try:
                completed = int(
                    await conn.fetchval(
                        "SELECT count(*) FROM awa.jobs_done WHERE state='completed'"
                    )
                )
                left = int(await conn.fetchval("SELECT count(*) FROM awa.jobs"))
            finally:
                await conn.close()
    elapsed = t_recorded - t_start
    result: dict[str, Any] = {
        "jobs": n,
        "concurrency": concurrency,
        "claim_batch": claim_batch,
        "seconds": round(elapsed, 4),
        "jobs_per_s": round(n / elapsed) if not error else 0,
        "startup_ms": round((t_started - t_start) * 1000, 2),
        "last_handler_to_recorded_ms": round((t_recorded - t_handled) * 1000, 2),
        "handled_in_process": handled,
        "applied_in_process": applied,
        "claimed": claimed,
        "completed_in_db": completed,
        "left_in_jobs": left,
        "client_cpu_us_per_job": round(meter.client_cpu_s / n * 1e6, 1),
        **meter.summary(),
        "waited_for_quiet_s": waited,
        "store_calls": {name: s.summary() for name, s in calls.items()},
        "ok": error is None and completed == n and left == 0,
    }
    if error:
        result["error"] = error
    if pg_stats:
        result["pg_stat_statements"] = statements
        if wal0 and wal1:
            result["wal_io"] = {k: round(wal1[k] - wal0[k], 3) for k in wal0}
    return result


#: Label in the results → the ``store.jobs`` method it times.
STORE_CALLS = {"claim": "claim_batch", "complete": "complete_batch"}


@contextmanager
def instrument_jobs(
    on_call: Callable[[str, float, float, Any], None] | None = None,
) -> Iterator[dict[str, CallStats]]:
    """Time the claim and complete calls of every ``store.jobs`` (the runtime's own store
    included), reported under the results' labels."""
    with instrumented(Jobs, tuple(STORE_CALLS.values()), on_call) as timed:
        yield {label: timed[method] for label, method in STORE_CALLS.items()}


def _applied(runtime: awa.Runtime) -> int | None:
    """Results the runtime's completion buffer has written (None if it does not say)."""
    applied = getattr(getattr(runtime, "buffer", None), "applied", None)
    return applied if isinstance(applied, int) else None


async def _wait_recorded(runtime: awa.Runtime, url: str, n: int) -> None:
    """Completed means recorded: wait until all ``n`` results are written. Polls the
    buffer's counter (cheap, in-process), or the database if the runtime has no counter."""
    if _applied(runtime) is not None:
        while (_applied(runtime) or 0) < n:  # noqa: ASYNC110 - a counter, not an event
            await asyncio.sleep(0.0005)
        return
    conn = await connect(url)
    try:
        sql = "SELECT count(*) FROM awa.jobs_done WHERE state = 'completed'"
        while int(await conn.fetchval(sql)) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def bench_pickup_latency(
    url: str,
    rate: float,
    duration: float,
    concurrency: int,
    claim_batch: int,
    *,
    pg_stats: bool,
    server_pid: int | None,
    wait_quiet: float = 0.0,
    settle: float = 0.5,
) -> dict[str, Any]:
    client = awa.Client(url)
    total = max(1, round(rate * duration))
    latencies: list[float] = []
    by_index: list[tuple[float, int]] = []  # (latency, insert sequence number)
    all_handled = asyncio.Event()

    started: dict[int, float] = {}  # job id -> handler start

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        now = time.perf_counter()
        latencies.append(now - ctx.args["t0"])
        by_index.append((now - ctx.args["t0"], ctx.args["i"]))
        started[ctx.job.id] = now
        if len(latencies) == total:
            all_handled.set()

    insert_s: list[float] = []
    inserted: list[tuple[int, float, float]] = []  # (job id, t0, insert returned)
    claims: dict[int, tuple[float, float]] = {}  # job id -> (claim sent, claim returned)
    behind = 0
    trace = PickupTrace()

    def on_call(method: str, sent: float, returned: float, result: Any) -> None:
        if method == "claim_batch":
            for job in result:
                claims[job.id] = (sent, returned)

    # before start: the listener binds notify, the runtime opens its own store
    with trace.installed(), instrument_jobs(on_call) as calls:
        async with client:
            if pg_stats:
                await reset_pg_stats(url)
            wal0 = await wal_io_snapshot(url) if pg_stats else {}
            config = awa.RuntimeConfig(queues={"default": concurrency}, claim_batch=claim_batch)
            async with awa.Runtime(client, config) as runtime:
                await asyncio.sleep(settle)  # idle: dispatchers parked on LISTEN
                waited = await wait_for_quiet(wait_quiet) if wait_quiet else 0.0
                meter = CpuMeter(server_pid).start()
                start = time.perf_counter()
                for i in range(total):
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        behind += 1
                    t0 = time.perf_counter()
                    job = await client.insert("noop", {"t0": t0, "i": i})
                    t1 = time.perf_counter()
                    insert_s.append(t1 - t0)
                    inserted.append((job.id, t0, t1))
                produced_s = time.perf_counter() - start
                try:
                    await asyncio.wait_for(all_handled.wait(), 10)
                except TimeoutError:
                    log.warning("pickup_latency: %d/%d handled after 10s", len(latencies), total)
                meter.stop()
                wakeups = getattr(runtime, "wakeups", None)
                listening = getattr(wakeups, "listening", None)
            wal1 = await wal_io_snapshot(url) if pg_stats else {}
            statements = await pg_stat_statements_top(url) if pg_stats else []
    ms = [x * 1000 for x in latencies]
    pct = percentiles(ms, LATENCY_POINTS)
    stages = latency_stages(inserted, claims, started, trace)
    ins = percentiles([x * 1000 for x in insert_s], (50, 99))
    result: dict[str, Any] = {
        "rate_per_s": rate,
        "duration_s": duration,
        "concurrency": concurrency,
        "claim_batch": claim_batch,
        "inserted": total,
        "count": len(ms),
        "achieved_rate_per_s": round(total / produced_s, 1),
        "late_inserts": behind,
        **{f"{k}_ms": round(v, 3) for k, v in pct.items()},
        "max_ms": round(max(ms), 3) if ms else None,
        "min_ms": round(min(ms), 3) if ms else None,
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else None,
        "over_5ms": sum(1 for x in ms if x > 5),
        "slowest": [
            {"i": i, "at_s": round(i / rate, 2), "ms": round(x * 1000, 2)}
            for x, i in sorted(by_index, reverse=True)[:5]
        ],
        "insert_p50_ms": round(ins.get("p50", 0.0), 3),
        "insert_p99_ms": round(ins.get("p99", 0.0), 3),
        "stages": stages,
        "listening": listening,
        **meter.summary(),
        "waited_for_quiet_s": waited,
        "store_calls": {name: s.summary() for name, s in calls.items()},
        "ok": len(ms) == total,
    }
    if pg_stats:
        result["pg_stat_statements"] = statements
        if wal0 and wal1:
            result["wal_io"] = {k: round(wal1[k] - wal0[k], 3) for k in wal0}
    return result


def _literal_claim_sql(limit: int) -> str:
    values = {"1": "'default'", "2": "ARRAY['noop']", "3": str(limit), "4": "'bench'", "5": "NULL"}
    return re.sub(r"\$(\d+)", lambda m: values[m[1]], sql_text("claim_batch"))


async def bench_explain(url: str, n: int, limit: int, chunk: int) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of claim_batch over ``n`` available jobs, rolled back."""
    client = awa.Client(url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    plans: dict[str, str] = {}
    async with client:
        await insert_noops(client, n, chunk)
    conn = await connect(url)
    try:
        literal = _literal_claim_sql(limit)
        prepared = sql_text("claim_batch")
        types = "text, text[], int, text, timestamptz"

        async def explain(label: str, analyze_table: bool, generic: bool) -> None:
            tr = conn.transaction()
            await tr.start()
            try:
                if analyze_table:
                    await conn.execute("ANALYZE awa.jobs")
                if generic:
                    await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    await conn.execute(f"PREPARE bench_claim({types}) AS {prepared}")
                    rows = await conn.fetch(
                        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim"
                        f"('default', ARRAY['noop'], {limit}, 'bench', NULL)"
                    )
                    await conn.execute("DEALLOCATE bench_claim")
                else:
                    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {literal}")
                plans[label] = "\n".join(r[0] for r in rows)
            finally:
                await tr.rollback()

        # Rolled back each time (ANALYZE executes the UPDATE), so every plan sees n rows.
        await explain("no_stats_custom", analyze_table=False, generic=False)
        await explain("no_stats_generic", analyze_table=False, generic=True)
        await explain("analyzed_custom", analyze_table=True, generic=False)
        await explain("analyzed_generic", analyze_table=True, generic=True)
        available = int(await conn.fetchval("SELECT count(*) FROM awa.jobs"))
    finally:
        await conn.close()
    uses = {k: "jobs_claim_idx" in v for k, v in plans.items()}
    times = {}
    for k, v in plans.items():
        m = re.search(r"Execution Time: ([\d.]+) ms", v)
        times[k] = float(m[1]) if m else None
    return {
        "available_jobs": available,
        "limit": limit,
        "sql": literal,
        "uses_jobs_claim_idx": uses,
        "execution_ms": times,
        "plans": plans,
        "ok": all(uses.values()),
    }


# ------------------------------------------------------------------------------ driver


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="awa throughput/latency benchmark",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_server_args(p, data_dir="bench-pgdata")
    p.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long smoke run (small N, 2 s latency run); saves no JSON unless --save "
        "(then as throughput-quick-*.json)",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    p.add_argument("--jobs", type=int, default=100_000, help="bulk_enqueue: jobs to insert")
    p.add_argument("--chunk", type=int, default=10_000, help="jobs per insert_many call")
    p.add_argument("--drain-jobs", type=int, default=20_000, help="drain: jobs to run")
    p.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="RuntimeConfig.queues['default'] (drain and pickup_latency)",
    )
    p.add_argument(
        "-b",
        "--claim-batch",
        type=int,
        default=DEFAULT_CLAIM_BATCH,
        help="RuntimeConfig.claim_batch (drain and pickup_latency)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="drain: runs (fresh database each); the median is reported",
    )
    p.add_argument(
        "--sweep",
        default=None,
        metavar="CxB,CxB,...",
        help="drain: also try these concurrency x claim_batch pairs, e.g. 50x50,200x100",
    )
    p.add_argument("--rate", type=float, default=200.0, help="pickup_latency: inserts per second")
    p.add_argument("--duration", type=float, default=20.0, help="pickup_latency: seconds")
    p.add_argument("--explain-jobs", type=int, default=20_000, help="explain: available jobs")
    p.add_argument(
        "--pg-stats",
        action="store_true",
        help="collect pg_stat_statements and WAL fsync stats per scenario",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="drain: give up after seconds")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each timed run, wait up to this long for a second with the machine "
        "<15%% busy (for shared machines); the wait is recorded",
    )
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 5_000)
        args.chunk = min(args.chunk, 1_000)
        args.drain_jobs = min(args.drain_jobs, 2_000)
        args.duration = min(args.duration, 2.0)
        args.explain_jobs = min(args.explain_jobs, 2_000)
        args.repeat = 1
    args.scenario_list = parse_scenarios(p, args.scenarios, SCENARIOS)
    args.sweep_pairs = []
    if args.sweep:
        for item in args.sweep.split(","):
            c, _, b = item.strip().partition("x")
            args.sweep_pairs.append((int(c), int(b)))
    return args


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["jobs_per_s"])
    chosen = dict(ordered[len(ordered) // 2])
    if len(runs) > 1:
        chosen["runs_jobs_per_s"] = [r["jobs_per_s"] for r in runs]
    return chosen


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    info = await machine_info(server, durability)
    results: dict[str, Any] = {}
    url = server.url

    async def drain_once(c: int, b: int) -> dict[str, Any]:
        async with fresh_database(url, "drain") as db:
            return await bench_drain(
                db,
                args.drain_jobs,
                c,
                b,
                chunk=args.chunk,
                pg_stats=args.pg_stats,
                timeout=args.timeout,
                server_pid=server.server_pid,
                wait_quiet=args.wait_quiet,
            )

    for scenario in args.scenario_list:
        print(f"... {scenario}", file=sys.stderr, flush=True)
        if scenario == "bulk_enqueue":
            async with fresh_database(url, "bulk") as db:
                results[scenario] = await bench_bulk_enqueue(
                    db, args.jobs, args.chunk, server.server_pid, args.wait_quiet
                )
        elif scenario == "drain":
            runs = [
                await drain_once(args.concurrency, args.claim_batch) for _ in range(args.repeat)
            ]
            results[scenario] = _median_run(runs)
            if args.sweep_pairs:
                sweep = []
                for c, b in args.sweep_pairs:
                    print(f"    sweep C={c} B={b}", file=sys.stderr, flush=True)
                    sweep.append(_median_run([await drain_once(c, b) for _ in range(args.repeat)]))
                results["drain_sweep"] = [
                    {
                        k: r[k]
                        for k in (
                            "concurrency",
                            "claim_batch",
                            "jobs_per_s",
                            "seconds",
                            "client_cpu_us_per_job",
                            "machine_cpu_busy",
                            "ok",
                        )
                    }
                    | {k: r[k] for k in ("postgres_cores", "other_cores") if k in r}
                    | ({"runs_jobs_per_s": r["runs_jobs_per_s"]} if "runs_jobs_per_s" in r else {})
                    | {
                        "claim_rows_per_call": r["store_calls"]["claim"].get("rows_per_call"),
                        "complete_rows_per_call": r["store_calls"]["complete"].get("rows_per_call"),
                    }
                    for r in sweep
                ]
        elif scenario == "pickup_latency":
            async with fresh_database(url, "latency") as db:
                results[scenario] = await bench_pickup_latency(
                    db,
                    args.rate,
                    args.duration,
                    args.concurrency,
                    args.claim_batch,
                    pg_stats=args.pg_stats,
                    server_pid=server.server_pid,
                    wait_quiet=args.wait_quiet,
                )
        elif scenario == "explain":
            async with fresh_database(url, "explain") as db:
                results[scenario] = await bench_explain(
                    db, args.explain_jobs, args.claim_batch, args.chunk
                )
    return {
        "benchmark": "throughput",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "parameters": {
            "jobs": args.jobs,
            "chunk": args.chunk,
            "drain_jobs": args.drain_jobs,
            "concurrency": args.concurrency,
            "claim_batch": args.claim_batch,
            "repeat": args.repeat,
            "rate": args.rate,
            "duration": args.duration,
            "scenarios": args.scenario_list,
            "pg_stats": args.pg_stats,
            "wait_quiet": args.wait_quiet,
        },
        "results": results,
    }


# ------------------------------------------------------------------------------ output


def _fmt(value: Any, spec: str = ",") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def render(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    r = payload["results"]
    lines = [
        f"awa throughput benchmark ({payload['mode']}) {m['date']}",
        f"  {m['cpu_count']} CPUs, Python {m['python']}, PostgreSQL {m['postgres_version']} "
        f"({m['server']}), durable={m['durable']} {m['durability_settings']}",
        f"  load average at start: {m['load_average_at_start']}",
        "",
        f"{'scenario':<16} {'figure':<34} {'value':>14}",
        f"{'-' * 16} {'-' * 34} {'-' * 14}",
    ]

    def row(scenario: str, label: str, value: str) -> None:
        lines.append(f"{scenario:<16} {label:<34} {value:>14}")

    def _cores(d: dict[str, Any]) -> None:
        if "postgres_cores" in d:
            row(
                "",
                "cores: client / postgres / other",
                f"{d['client_cores']:.2f}/{d['postgres_cores']:.2f}/{d.get('other_cores', 0):.2f}",
            )

    if "bulk_enqueue" in r:
        b = r["bulk_enqueue"]
        row(
            "bulk_enqueue",
            f"jobs/s ({b['jobs']:,} in chunks of {b['chunk']:,})",
            _fmt(b["jobs_per_s"]),
        )
        row("", "insert_many only, jobs/s", _fmt(b["insert_only_jobs_per_s"]))
        row(
            "",
            "seconds (params build + insert)",
            f"{b['params_build_s']:.2f}+{b['insert_many_s']:.2f}",
        )
    if "drain" in r:
        d = r["drain"]
        row(
            "drain",
            f"completed jobs/s (C={d['concurrency']}, B={d['claim_batch']})",
            _fmt(d["jobs_per_s"]),
        )
        row("", "seconds for jobs", f"{d['seconds']:.3f} / {d['jobs']:,}")
        row("", "completed in awa.jobs_done", _fmt(d["completed_in_db"]))
        row("", "client CPU µs/job", _fmt(d["client_cpu_us_per_job"], ".1f"))
        row("", "machine CPU busy (all cores)", _fmt(d["machine_cpu_busy"], ".0%"))
        _cores(d)
        for name, s in d["store_calls"].items():
            if s.get("calls"):
                row(
                    "",
                    f"{name}: calls × rows, mean ms",
                    f"{s['calls']}×{s['rows_per_call']:g} {s['mean_ms']:.2f}",
                )
    for s in r.get("drain_sweep", []):
        row(
            "drain_sweep",
            f"C={s['concurrency']} B={s['claim_batch']} jobs/s",
            _fmt(s["jobs_per_s"]),
        )
    if "pickup_latency" in r:
        p = r["pickup_latency"]
        row(
            "pickup_latency",
            f"count ({p['rate_per_s']:g}/s for {p['duration_s']:g}s)",
            _fmt(p["count"]),
        )
        for key in ("p50", "p95", "p99"):
            row("", f"{key} ms", _fmt(p.get(f"{key}_ms"), ".2f"))
        row("", "max ms", _fmt(p["max_ms"], ".2f"))
        row("", "insert() p50 / p99 ms", f"{p['insert_p50_ms']:.2f} / {p['insert_p99_ms']:.2f}")
        row("", "jobs over 5 ms", _fmt(p["over_5ms"]))
        _cores(p)
        stages = p.get("stages", {})
        for name, st in stages.items():
            if not isinstance(st, dict) or "p50_ms" not in st:
                continue
            slow = st["mean_ms_in_slow_jobs"]
            row(
                "",
                f"stage {name}: p50/p99/max (slow-job mean)",
                f"{st['p50_ms']:.2f}/{st['p99_ms']:.2f}/{st['max_ms']:.1f} ({_fmt(slow, '.1f')})",
            )
        if "gc" in stages:
            g = stages["gc"]
            row(
                "",
                "gc pauses (max ms); slow jobs overlapping one",
                f"{g['pauses']} ({_fmt(g['max_ms'], '.1f')}); "
                f"{stages['slow_jobs_overlapping_gc']}/{stages['slow_jobs']}",
            )
    if "explain" in r:
        e = r["explain"]
        for label, used in e["uses_jobs_claim_idx"].items():
            row(
                "explain",
                f"{label} uses jobs_claim_idx",
                f"{'yes' if used else 'NO'} {_fmt(e['execution_ms'][label], '.2f')}ms",
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    payload = run_and_report(args, run, render, "throughput", SCENARIOS)
    failed = [k for k, v in payload["results"].items() if isinstance(v, dict) and not v["ok"]]
    if failed:
        print(f"FAILED scenarios: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
