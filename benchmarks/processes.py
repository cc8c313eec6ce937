"""How drain throughput grows with worker processes (a script, not a test; issue 19, ADR 028).

For each process count N in 1, 2, 4, ... up to ``--max-processes`` (default: the CPU count,
which is always included): a fresh database, K no-op jobs inserted into a *paused* queue,
N worker processes started through ``awa.runtime.processes.WorkerProcesses`` (what
``awa worker --processes N`` runs) and waited for until every one has printed its ready
banner; then the queue is resumed and the clock runs until all K are completed in
``awa.jobs_done`` (database time from the resume to the last ``finalized_at``, so the
polling period does not count). The pause keeps process start-up (an interpreter and the
application import per child) out of the timed window.

Printed and written to ``benchmarks/results/processes-*.json``: jobs/s per N, the scaling
efficiency ``throughput_N / (N x throughput_1)``, and what the database's awa backends were
doing during the drain: ``pg_stat_activity`` sampled every ``--sample-interval`` seconds,
active awa backends counted per ``wait_event_type:wait_event`` (``CPU:running`` when a
backend waits on nothing). Run ``python benchmarks/processes.py --help``; ``--quick`` is a
seconds-long smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support import REPO_ROOT
from _support.cli import add_output_args, add_server_args
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from awa.db import connect
from awa.runtime.processes import WorkerProcesses

log = logging.getLogger("awa.bench.processes")

SCENARIOS = ("drain",)

#: The application every child imports (written to a scratch folder, their working directory).
APP = """\
import awa

client = awa.Client()


@client.handler("noop")
async def noop(ctx: awa.JobContext) -> None:
    return None
"""

WAIT_EVENTS = """
SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, 'running') AS event,
       count(*) AS n
  FROM pg_stat_activity
 WHERE datname = current_database() AND application_name = 'awa' AND state = 'active'
   AND pid <> pg_backend_pid()
   -- A follower waits for leadership inside pg_advisory_lock (ADR 036): always "active",
   -- it is not work waiting, and would read as advisory-lock contention in every sample.
   AND pid NOT IN (SELECT l.pid FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1)
 GROUP BY 1
"""


def _log(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


def _banners(log_path: Path) -> int:
    return _log(log_path).count("running queues")


def process_counts(maximum: int) -> list[int]:
    """1, 2, 4, ... below ``maximum``, then ``maximum`` itself."""
    counts, n = [], 1
    while n < maximum:
        counts.append(n)
        n *= 2
    return [*counts, maximum]


async def drain(url: str, processes: int, args: argparse.Namespace, app_dir: str) -> dict[str, Any]:
    jobs = args.jobs
    async with awa.Client(url) as client:
        for start in range(0, jobs, args.chunk):
            stop = min(jobs, start + args.chunk)
            await client.insert_many([client.params("noop", {"i": i}) for i in range(start, stop)])
        await client.queues.pause("default", reason="benchmark: workers starting")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), app_dir])}
    # The children's output, read for their banners: a child prints one once it is ready
    # (dispatching, listening), later than it registers its runtime row.
    log_path = Path(app_dir, f"workers-{processes}.log")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    supervisor = WorkerProcesses.for_app(
        "bench_noop_app:client",
        processes,
        queues={"default": args.concurrency},
        database_url=url,
        shutdown_grace=5.0,
        cwd=app_dir,
        env=env,
        output=log_fd,
    )
    events: Counter[str] = Counter()
    samples = 0
    error = None
    conn = await connect(url)
    run = asyncio.ensure_future(supervisor.run())
    try:
        deadline = time.monotonic() + 120
        while _banners(log_path) < processes:
            if run.done() or time.monotonic() > deadline:
                tail = _log(log_path)[-3000:]
                raise RuntimeError(f"{processes} worker processes did not all start:\n{tail}")
            await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        db_t0 = await conn.fetchval("SELECT clock_timestamp()")
        async with awa.Client(url) as client:
            await client.queues.resume("default")
        deadline = time.monotonic() + args.timeout
        done = 0
        while done < jobs:
            for row in await conn.fetch(WAIT_EVENTS):
                events[row["event"]] += int(row["n"])
            samples += 1
            done = int(
                await conn.fetchval("SELECT count(*) FROM awa.jobs_done WHERE state='completed'")
            )
            if time.monotonic() > deadline:
                error = f"timed out after {args.timeout}s with {done}/{jobs} completed"
                break
            await asyncio.sleep(args.sample_interval)
        wall = time.perf_counter() - t0
        # The last completion's own time, not when the polling loop saw it.
        last = await conn.fetchval("SELECT max(finalized_at) FROM awa.jobs_done")
        elapsed = (last - db_t0).total_seconds() if last is not None and not error else wall
    finally:
        supervisor.request_stop()
        await run
        await conn.close()
        os.close(log_fd)
    return {
        "processes": processes,
        "jobs": jobs,
        "concurrency_per_process": args.concurrency,
        "seconds": round(elapsed, 3),
        "seconds_until_seen": round(wall, 3),
        "jobs_per_s": round(done / elapsed) if not error else 0,
        "completed": done,
        "started_processes": supervisor.started,
        "stopped_cleanly": supervisor.clean,
        "wait_event_samples": samples,
        "wait_events": dict(events.most_common()),
        "error": error,
        "ok": error is None and done == jobs and supervisor.clean,
    }


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    machine = await machine_info(server, durability)
    runs = []
    with tempfile.TemporaryDirectory(prefix="awa-bench-processes-") as app_dir:
        await asyncio.to_thread(Path(app_dir, "bench_noop_app.py").write_text, APP)
        for n in process_counts(args.max_processes):
            async with fresh_database(server.url, f"procs{n}") as url:
                result = await drain(url, n, args, app_dir)
            log.warning("%d processes: %s jobs/s", n, result["jobs_per_s"])
            runs.append(result)
    base = runs[0]["jobs_per_s"]
    for r in runs:
        r["scaling_efficiency"] = round(r["jobs_per_s"] / (r["processes"] * base), 3) if base else 0
    return {
        "benchmark": "processes",
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "config": {
            "jobs": args.jobs,
            "max_processes": args.max_processes,
            "concurrency_per_process": args.concurrency,
            "sample_interval": args.sample_interval,
        },
        "results": {"drain": {"runs": runs, "ok": all(r["ok"] for r in runs)}},
    }


def render(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        f"awa worker processes benchmark ({payload['mode']}) {m['date']}",
        f"  {describe_machine(m)}",
        f"  cores: {m['cpu_count']}; load average at start: {m['load_average_at_start']}",
        "",
        f"{'processes':>9} {'jobs/s':>9} {'efficiency':>10} {'seconds':>8}  wait events (samples)",
    ]
    for r in payload["results"]["drain"]["runs"]:
        top = ", ".join(f"{k} {v}" for k, v in list(r["wait_events"].items())[:4])
        lines.append(
            f"{r['processes']:>9} {r['jobs_per_s']:>9,} {r['scaling_efficiency']:>10.2f} "
            f"{r['seconds']:>8.2f}  {top} ({r['wait_event_samples']})"
            + (f"  ERROR {r['error']}" if r["error"] else "")
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per drain")
    parser.add_argument(
        "--max-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="largest process count (default: the CPU count)",
    )
    parser.add_argument("--concurrency", type=int, default=200, help="per process (default 200)")
    parser.add_argument("--chunk", type=int, default=5_000, help="insert_many chunk size")
    parser.add_argument("--sample-interval", type=float, default=0.2, help="seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="per drain, seconds")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 500 jobs, at most 2 processes"
    )
    add_server_args(parser, data_dir="bench-pgdata")
    add_output_args(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs = min(args.jobs, 500)
        args.max_processes = min(args.max_processes, 2)
    if args.jobs < 1 or args.max_processes < 1:
        parser.error("--jobs and --max-processes must be at least 1")
    args.scenario_list = list(SCENARIOS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    payload = run_and_report(args, run, render, "processes", SCENARIOS)
    if not payload["results"]["drain"]["ok"]:
        print("FAILED: a drain did not complete cleanly", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
