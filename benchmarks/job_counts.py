"""What the job-count triggers (migration 18, ADR 039) cost the write paths: A/B, interleaved.

Each round runs both modes, in alternating order, each in a fresh migrated database:
``off`` (the four count triggers on ``awa.jobs`` disabled: the writes as before migration
18) and ``on`` (as shipped). With ``--triggers history`` the A/B is migration 19's history
count triggers on ``awa.jobs_done`` instead (ADR 043; ``off``: the writes as before
migration 19, live counts on in both modes), written to ``history_counts-latest.json``.
Per mode:

- ``insert``: ``store.jobs.insert_job``, one job per call;
- ``copy_per_job``: ``store.jobs.insert_many`` of 1,000 jobs (one COPY), per job;
- ``claim_100``: ``store.jobs.claim_batch`` of 100;
- ``heartbeat_100``: a heartbeat of those 100 running jobs: an UPDATE whose state does not
  change, for which the trigger aggregates and writes nothing;
- ``complete_100``: ``complete_batch`` of those 100;

each as ``_wall_ms`` (median per call, commit and fsync included: on a loaded machine
mostly noise), ``_server_ms`` (``pg_stat_statements`` execution time per call, the
triggers included, the commit not) and ``_wal_bytes`` per call;
- ``drain``: ``throughput.bench_drain`` (a real runtime runs N no-op jobs): jobs/s and
  PostgreSQL CPU per job (the server's backends' user+system time, /proc).

Medians over the rounds; the JSON (``benchmarks/results/job_counts-latest.json``) keeps
every round. On a shared 2-core machine the figures are noisy: compare the modes within a
round, and read the medians, not single runs.

    python benchmarks/job_counts.py --rounds 6
    python benchmarks/job_counts.py --rounds 6 --triggers history
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support.cli import add_output_args, add_server_args
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from awa.db import connect
from awa.model import InsertParams
from awa.store import Store
from throughput import bench_drain

SCENARIOS = ("ab",)
MODES = ("off", "on")
#: Per ``--triggers``: the table and the triggers the A/B switches. The history's are its
#: parent's statement triggers, the ones every awa write fires (a partition's own fire only
#: for a statement naming the partition, and TRUNCATE is not measured here).
TRIGGERS = {
    "live": (
        "awa.jobs",
        ("jobs_count_insert", "jobs_count_update", "jobs_count_delete", "jobs_count_truncate"),
    ),
    "history": (
        "awa.jobs_done",
        ("jobs_done_count_insert", "jobs_done_count_update", "jobs_done_count_delete"),
    ),
}


async def _set_triggers(url: str, mode: str, which: str = "live") -> None:
    """Enable or disable the count triggers ``which`` (``off``: the writes as before
    migration 18, or 19 for the history's)."""
    verb = "ENABLE" if mode == "on" else "DISABLE"
    table, names = TRIGGERS[which]
    conn = await connect(url)
    try:
        for name in names:
            await conn.execute(f"ALTER TABLE {table} {verb} TRIGGER {name}")
    finally:
        await conn.close()


class ServerTime:
    """Server-side execution time and WAL of this database's statements since the last
    ``take`` (``pg_stat_statements``: trigger work included, commit and its fsync not, so
    a loaded machine's scheduling and the disk blur it less than wall-clock time)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def take(self) -> tuple[float, int]:
        row = await self._conn.fetchrow(
            "SELECT coalesce(sum(total_exec_time), 0) AS ms, coalesce(sum(wal_bytes), 0) AS wal"
            " FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT ILIKE '%pg_stat_statements%'"
        )
        await self._conn.execute(
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
            " WHERE datname = current_database()), 0)"
        )
        return float(row["ms"]), int(row["wal"])


async def micro(url: str, singles: int, copies: int, batches: int) -> dict[str, float]:
    """Cost per call of each write path, in one database: the median wall-clock time of a
    call (commit included), and the server's execution time and WAL bytes per call."""
    store = await Store.open(url, max_size=2)
    conn = await connect(url)
    out: dict[str, float] = {}

    async def phase(name: str, calls: list[Awaitable[Any]], per: float = 1.0) -> list[Any]:
        """Run ``calls`` one by one; record ``<name>`` figures divided by ``per``."""
        await server.take()
        times, results = [], []
        for call in calls:
            t0 = time.perf_counter()
            results.append(await call)
            times.append((time.perf_counter() - t0) * 1000)
        ms, wal = await server.take()
        out[f"{name}_wall_ms"] = round(statistics.median(times) / per, 4)
        out[f"{name}_server_ms"] = round(ms / len(calls) / per, 4)
        out[f"{name}_wal_bytes"] = round(wal / len(calls) / per, 1)
        return results

    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        server = ServerTime(conn)
        await phase(
            "insert",
            [store.jobs.insert_job(InsertParams("one", queue="single")) for _ in range(singles)],
        )
        await phase(
            "copy_per_job",
            [
                store.jobs.insert_many([InsertParams("bulk") for _ in range(1000)])
                for _ in range(copies)
            ],
            per=1000.0,
        )
        claimed = await phase(
            "claim_100",
            [store.jobs.claim_batch("default", ["bulk"], 100, "bench") for _ in range(batches)],
        )
        batches_ = [([j.id for j in js], [j.run_lease for j in js]) for js in claimed]
        await phase(
            "heartbeat_100",
            [store.jobs.heartbeat(ids, leases, [None] * len(ids)) for ids, leases in batches_],
        )
        await phase(
            "complete_100",
            [store.jobs.complete_batch(ids, leases, [None] * len(ids)) for ids, leases in batches_],
        )
        await conn.execute("TRUNCATE awa.jobs, awa.jobs_done")  # the drain counts history
    finally:
        await conn.close()
        await store.close()
    return out


async def one_mode(args: argparse.Namespace, server: BenchServer, mode: str) -> dict[str, Any]:
    async with fresh_database(server.url, f"counts_{mode}") as url:
        await _set_triggers(url, mode, args.triggers)
        costs = await micro(url, args.singles, args.copies, args.copies * 10)
        drain = await bench_drain(
            url,
            args.drain_jobs,
            args.concurrency,
            args.claim_batch,
            chunk=1000,
            pg_stats=False,
            timeout=300.0,
            server_pid=server.server_pid,
        )
    pg = drain.get("postgres_cpu_s")
    return costs | {
        "drain_jobs_per_s": drain["jobs_per_s"],
        "drain_pg_cpu_us_per_job": None if pg is None else round(pg / args.drain_jobs * 1e6, 1),
        "drain_ok": drain["ok"],
        "machine_cpu_busy": drain.get("machine_cpu_busy"),
    }


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    machine = await machine_info(server, await server.ensure_durability())
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = MODES if r % 2 == 0 else MODES[::-1]
        result = {}
        for mode in order:
            print(f"... round {r + 1}/{args.rounds} triggers {mode}", flush=True)
            result[mode] = await one_mode(args, server, mode)
        rounds.append(result)
    medians = {
        mode: {
            key: statistics.median(r[mode][key] for r in rounds if r[mode][key] is not None)
            for key in rounds[0][mode]
            if isinstance(rounds[0][mode][key], (int, float))
            and not isinstance(rounds[0][mode][key], bool)
        }
        for mode in MODES
    }
    return {
        "benchmark": "job_counts",
        "triggers": args.triggers,
        "machine": machine,
        "server": server.kind,
        "durable": not args.fast,
        "rounds": args.rounds,
        "drain": {
            "jobs": args.drain_jobs,
            "concurrency": args.concurrency,
            "claim_batch": args.claim_batch,
        },
        "median": medians,
        "ratio_on_off": {
            key: round(medians["on"][key] / medians["off"][key], 3)
            for key in medians["on"]
            if medians["off"].get(key)
        },
        "runs": rounds,
        "note": args.note,
    }


def render(p: dict[str, Any]) -> str:
    lines = [
        describe_machine(p["machine"]),
        f"{p['triggers']} count triggers off/on, {p['rounds']} interleaved rounds ({p['server']},"
        f" durable={p['durable']}); drain {p['drain']}",
        f"{'figure (median)':<30}{'off':>10}{'on':>10}{'on/off':>8}",
    ]
    for key, on in p["median"]["on"].items():
        off = p["median"]["off"].get(key)
        ratio = p["ratio_on_off"].get(key)
        lines.append(f"{key:<30}{off:>10.3f}{on:>10.3f}{ratio if ratio else '':>8}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(parser, data_dir="bench-counts")
    add_output_args(parser)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved A/B rounds")
    parser.add_argument("--singles", type=int, default=200, help="single inserts per mode")
    parser.add_argument("--copies", type=int, default=5, help="COPYs of 1,000 per mode")
    parser.add_argument("--drain-jobs", type=int, default=10_000, help="jobs drained per mode")
    parser.add_argument("--concurrency", type=int, default=100, help="drain concurrency")
    parser.add_argument("--claim-batch", type=int, default=100, help="drain claim batch")
    parser.add_argument(
        "--triggers",
        choices=sorted(TRIGGERS),
        default="live",
        help="which count triggers the A/B switches: live (migration 18) or history (19)",
    )
    parser.add_argument("--note", default="", help="recorded with the results")
    args = parser.parse_args()
    args.quick = False
    args.scenario_list = list(SCENARIOS)
    stem = "job_counts" if args.triggers == "live" else "history_counts"
    run_and_report(args, run, render, stem, SCENARIOS)


if __name__ == "__main__":
    main()
