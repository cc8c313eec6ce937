"""Big tables (issue 19): what hygiene, claims and heartbeats cost when the tables are big.

Builds once, set-based (``_support.backlog.build``, shared with ``long_horizon.py
--backlog``), in a database kept on the embedded server between runs (``--data-dir``,
default ``.awa/bench-big``; ``--rebuild`` starts over):

- ``--history`` finished jobs (default 10M) in the history ring, spread over its slots,
  one in twenty failed; a tenth of them (at most 1M) went through ``awa.jobs`` as a burst
  first, so its heap keeps the pages the burst allocated, as after a real one;
- ``--live`` live jobs (default 1M): scheduled and retryable (due later), available of
  handled kinds, running;
- 100k unique keys, half of them held by jobs no longer stored (the GC's work);
- 200k available jobs of a kind nobody handles at the head of queue ``shared``.

Then prints and writes (``benchmarks/results/big_tables-latest.json``):

- per hygiene branch, ``run_once`` as the leader runs it (a clock pinned 10 s after the
  build, so reruns on another day find the same work): median duration and the buffers
  its statements touched (``pg_stat_statements``, hit + read);
- claim latency p50/p99 (batch 100, each claim rolled back so the stock stays put) on queue
  ``shared`` behind the unhandled backlog and on ``clean``, the same stock without it;
- ``queue_stats`` time, and the HOT ratio of heartbeat updates
  (``pg_stat_user_tables.n_tup_hot_upd / n_tup_upd``) over 20 beats of 100 running jobs;
- ``queue_counts`` (``awa queues``, the console, ``Client.queue_stats()``): median ms and
  EXPLAIN buffers as shipped (maintained counts, ADR 043) and as before migration 19 (a
  GROUP BY of every live and finished job), on the same data.

Acceptance (issue 19): every hygiene branch ≤ 100 ms per run at 10M history rows; claim p99
with the backlog ≤ 1.2× without; HOT ratio ≥ 90 %. On a shared machine the times are noisy:
the buffers are the figure to compare.

    python benchmarks/big_tables.py --history 1000000 --live 100000   # develop
    python benchmarks/big_tables.py                                   # 10M history, 1M live
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support.backlog import BUILD_VERSION, build, built_version
from _support.cli import add_output_args, add_server_args
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, with_database
from awa.clock import FakeClock
from awa.config import MaintenanceConfig
from awa.db import connect, migrate
from awa.db.queries import paired_queries
from awa.maintenance import BranchContext
from awa.maintenance.branch import HYGIENE
from awa.maintenance.builtin import build_branches
from awa.maintenance.options import BranchOptions
from awa.store import Store

SCENARIOS = ("big",)
_CLAIM = paired_queries("jobs")["claim_batch"].sql
_QUEUE_COUNTS = paired_queries("admin")["queue_counts"].sql
#: ``queue_counts`` before migration 19 (ADR 043), for the before/after figures; the same
#: file is the oracle of tests/admin/test_queue_counts_*.py.
_OLD_QUEUE_COUNTS = (
    Path(__file__).parent / "_support" / "queue_counts_before_0019.sql"
).read_text()


async def database(args: argparse.Namespace, server_url: str) -> str:
    """The URL of the built database for these sizes, building it if needed."""
    history, live = args.history, args.live
    name = f"awa_big_h{history}_l{live}_u{args.unhandled}_s{args.stock}"
    admin = await connect(server_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and args.rebuild:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    conn = await connect(url)
    try:
        await migrate(conn)
        if await built_version(conn) != BUILD_VERSION:
            print(f"building {name} (history {history:,}, live {live:,}) ...", flush=True)
            t0 = time.perf_counter()
            await conn.execute("DROP TABLE IF EXISTS bench_big")
            await build(conn, history, live, args.unhandled, args.stock)
            print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        await conn.close()
    return url


async def _blocks(conn: Any) -> int:
    """Shared buffers (hit + read) of this database's statements since the last call, from
    ``pg_stat_statements`` (updated as each statement ends, unlike ``pg_stat_database``,
    which a backend reports up to seconds later), then reset."""
    value = await conn.fetchval(
        "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND query NOT ILIKE '%pg_stat_statements%'"
    )
    await conn.execute(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
        " WHERE datname = current_database()), 0)"
    )
    return int(value)


async def hygiene(url: str, store: Store, at: datetime, runs: int) -> dict[str, Any]:
    """Each hygiene branch's ``run_once``: median ms and buffers per run."""
    config = MaintenanceConfig(startup_jitter=0)
    ctx = BranchContext(store=store, clock=FakeClock(at), config=config)
    branches = [b for b in build_branches(BranchOptions(config=config)) if b.lane == HYGIENE]
    out: dict[str, Any] = {}
    conn = await connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for branch in branches:
            times, blocks = [], []
            for _ in range(runs):
                await _blocks(conn)
                t0 = time.perf_counter()
                await branch.run_once(ctx)
                times.append((time.perf_counter() - t0) * 1000)
                blocks.append(await _blocks(conn))
            out[branch.name] = {
                "ms_median": round(statistics.median(times), 2),
                "ms_max": round(max(times), 2),
                "buffers_median": int(statistics.median(blocks)),
            }
    finally:
        await conn.close()
    return out


async def claims(url: str, queues: tuple[str, ...], rounds: int) -> dict[str, Any]:
    """Claim latency (batch 100, each rolled back) per queue, the queues taken in turn so
    that a burst of load on the shared machine hits both alike: p50/p99 ms and buffers."""
    conn = await connect(url)
    times: dict[str, list[float]] = {q: [] for q in queues}
    out: dict[str, Any] = {}
    try:
        for _ in range(rounds):
            for queue in queues:
                tx = conn.transaction()
                await tx.start()
                t0 = time.perf_counter()
                rows = await conn.fetch(_CLAIM, queue, ["work"], 100, "b", None)
                times[queue].append((time.perf_counter() - t0) * 1000)
                await tx.rollback()
                assert len(rows) == 100
        for queue in queues:
            tx = conn.transaction()
            await tx.start()
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _CLAIM, queue, ["work"], 100, "b", None
            )
            await tx.rollback()
            root = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
            ms = sorted(times[queue])
            out[queue] = {
                "p50_ms": round(ms[len(ms) // 2], 3),
                "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
                "buffers": int(root["Shared Hit Blocks"]) + int(root["Shared Read Blocks"]),
            }
    finally:
        await conn.close()
    return out


async def queue_counts(url: str, at: datetime, runs: int) -> dict[str, Any]:
    """``queue_counts`` as shipped (``new``) and as before migration 19 (``old``), taken in
    turn: median and max ms over ``runs`` calls, EXPLAIN buffers; and whether both return
    the same rows."""
    conn = await connect(url)
    times: dict[str, list[float]] = {"new": [], "old": []}
    queries = {"new": _QUEUE_COUNTS, "old": _OLD_QUEUE_COUNTS}
    out: dict[str, Any] = {}
    try:
        for _ in range(runs):
            for label, sql in queries.items():
                t0 = time.perf_counter()
                await conn.fetch(sql, at)
                times[label].append((time.perf_counter() - t0) * 1000)
        for label, sql in queries.items():
            tx = conn.transaction()
            await tx.start()
            plan = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, at)
            await tx.rollback()
            root = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
            out[label] = {
                "ms_median": round(statistics.median(times[label]), 2),
                "ms_max": round(max(times[label]), 2),
                "buffers": int(root["Shared Hit Blocks"]) + int(root["Shared Read Blocks"]),
            }
        rows = [[tuple(r) for r in await conn.fetch(sql, at)] for sql in queries.values()]
        out["same_rows"] = rows[0] == rows[1]
    finally:
        await conn.close()
    return out


async def heartbeats(url: str, beats: int = 20) -> dict[str, Any]:
    """HOT ratio of ``beats`` heartbeats of the 100 running jobs claimed from ``hb``, by a
    store of its own: closing it makes its backends report their statistics as they exit."""
    query = (
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
        " WHERE schemaname = 'awa' AND relname = 'jobs'"
    )
    conn = await connect(url)
    try:
        await asyncio.sleep(1.0)  # earlier backends have exited, reporting as they went
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        before = await conn.fetchrow(query)
        store = await Store.open(url, max_size=1)
        try:
            jobs = await store.jobs.claim_batch("hb", ["work"], 100, "bench-hb")
            for _ in range(beats):
                await store.jobs.heartbeat(
                    [j.id for j in jobs], [j.run_lease for j in jobs], [None] * len(jobs)
                )
        finally:
            await store.close()
        await asyncio.sleep(1.0)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        after = await conn.fetchrow(query)
        await conn.execute(
            "UPDATE awa.jobs SET state = 'available', claimed_by = NULL WHERE queue = 'hb'"
        )
    finally:
        await conn.close()
    # The claim is one update per job, not HOT (its state changes): count the beats only.
    updates = after["n_tup_upd"] - before["n_tup_upd"] - len(jobs)
    hot = after["n_tup_hot_upd"] - before["n_tup_hot_upd"]
    return {"updates": updates, "hot": hot, "hot_ratio": round(hot / max(1, updates), 3)}


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    machine = await machine_info(server, await server.ensure_durability())
    url = await database(args, server.url)
    conn = await connect(url)
    try:
        built_at = await conn.fetchval("SELECT t FROM bench_big")
        sizes = {
            r["relname"]: int(r["n"])
            for r in await conn.fetch(
                "SELECT c.relname, pg_relation_size(c.oid) / 8192 AS n FROM pg_class c"
                " WHERE c.relnamespace = 'awa'::regnamespace AND c.relkind = 'r'"
                " AND c.relname IN ('jobs', 'jobs_done_0', 'job_unique')"
            )
        }
        await conn.execute("UPDATE awa.ring_state SET rotated_at = $1", built_at)
        await conn.execute("VACUUM ANALYZE awa.jobs")  # what autovacuum keeps up
    finally:
        await conn.close()
    store = await Store.open(url, max_size=4)
    try:
        branches = await hygiene(url, store, built_at + timedelta(seconds=10), args.runs)
        # After hygiene: queue_stats has folded the counts, as a leader keeps them.
        counted = await queue_counts(url, built_at + timedelta(seconds=10), args.runs)
        claimed = await claims(url, ("shared", "clean"), args.claims)
        crowded, clean = claimed["shared"], claimed["clean"]
    finally:
        await store.close()
    hot = await heartbeats(url)
    worst = max(b["ms_median"] for b in branches.values())
    return {
        "benchmark": "big_tables",
        "machine": machine,
        "server": server.kind,
        "durable": not args.fast,
        "history": args.history,
        "live": args.live,
        "unhandled": args.unhandled,
        # The path, not the last "/": a socket directory in the query has slashes too.
        "database": urlsplit(url).path.lstrip("/"),
        "pages": sizes,
        "hygiene": branches,
        "queue_stats_ms": branches.get("queue_stats", {}).get("ms_median"),
        "queue_counts": counted,
        "claims": {"with_unhandled_backlog": crowded, "without": clean},
        "claim_p99_ratio": round(crowded["p99_ms"] / max(1e-9, clean["p99_ms"]), 3),
        "heartbeat": hot,
        "acceptance": {
            "hygiene_max_ms": worst,
            "hygiene_ok": worst <= 100.0,
            "claim_ok": crowded["p99_ms"] <= 1.2 * clean["p99_ms"],
            "hot_ok": hot["hot_ratio"] >= 0.9,
        },
        "note": args.note,
    }


def render(p: dict[str, Any]) -> str:
    lines = [
        describe_machine(p["machine"]),
        f"big tables: history {p['history']:,}, live {p['live']:,} ({p['server']},"
        f" durable={p['durable']}); pages {p['pages']}",
        f"{'hygiene branch':<26}{'ms (median)':>12}{'ms (max)':>10}{'buffers':>10}",
    ]
    for name, b in p["hygiene"].items():
        lines.append(
            f"{name:<26}{b['ms_median']:>12.2f}{b['ms_max']:>10.2f}{b['buffers_median']:>10,}"
        )
    for label, c in p["claims"].items():
        lines.append(
            f"claim (batch 100) {label:<24} p50 {c['p50_ms']:.2f} ms  p99 {c['p99_ms']:.2f} ms"
            f"  buffers {c['buffers']:,}"
        )
    qc = p["queue_counts"]
    for label in ("new", "old"):
        lines.append(
            f"queue_counts ({label}) ms median {qc[label]['ms_median']:.2f}"
            f"  max {qc[label]['ms_max']:.2f}  buffers {qc[label]['buffers']:,}"
        )
    lines.append(f"queue_counts same rows new/old: {qc['same_rows']}")
    hb = p["heartbeat"]
    lines.append(f"heartbeat HOT: {hb['hot']}/{hb['updates']} ({hb['hot_ratio']:.0%})")
    lines.append(f"acceptance: {p['acceptance']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(parser, data_dir="bench-big")
    add_output_args(parser)
    parser.add_argument("--history", type=int, default=10_000_000, help="finished jobs")
    parser.add_argument("--live", type=int, default=1_000_000, help="live jobs")
    parser.add_argument("--unhandled", type=int, default=200_000, help="unhandled backlog")
    parser.add_argument("--stock", type=int, default=20_000, help="claimable jobs per queue")
    parser.add_argument("--rebuild", action="store_true", help="build the data set anew")
    parser.add_argument("--runs", type=int, default=5, help="runs per hygiene branch")
    parser.add_argument("--claims", type=int, default=200, help="claims per queue")
    parser.add_argument("--note", default="", help="recorded with the results")
    args = parser.parse_args()
    args.quick = False
    args.scenario_list = list(SCENARIOS)
    run_and_report(args, run, render, "big_tables", SCENARIOS)


if __name__ == "__main__":
    main()
