"""The console's jobs list at 10M history rows: latency per filter, and the plan behind it.

    python benchmarks/console_jobs.py [--rows 10000000] [--live 50000] [--runs 30] [--fast]

Builds once (kept for the next run; ``--rebuild`` starts over) a database
``awa_bench_console_jobs_<rows>`` holding ``--rows`` finished jobs in the history ring
(``awa.jobs_done``, spread over its 8 slots and 7 days) plus ``--live`` live jobs, written
set-based by ``INSERT ... SELECT generate_series`` straight into the tables (the client
would take hours for 10M). The history's indexes are dropped during the load and rebuilt
from their own definitions (``pg_indexes``), which is what a long-running system has: the
same indexes over the same rows. Distributions: 20 kinds and 8 queues, skewed; one rare
kind (1 in 100,000) and one rare queue (1 in 200,000); 90 % completed, 7 % failed, 3 %
cancelled; 1 job in 10 tagged ``tenant:<0..99>``, one in a million ``rare-tag``.

Then it times ``GET /api/jobs`` of the console (the real Starlette app, in process through
httpx's ASGI transport: routing, admin layer, query, JSON) for each filter — none, state,
queue (common, rare), kind (common, rare), tag (common, rare), a finished-between window,
state + window, queue + state, and a deep page (``before_id`` in the middle of the
history) — printing p50/p99 and the index(es) the plan reads (``EXPLAIN`` of the same query
with the same parameters, custom plan as the console runs it), and flags any sequential
scan. JSON: ``benchmarks/results/console_jobs-latest.json``.

The other side of the indexes (``--completion-cost ROUNDS``): what migration 0015's three
history indexes cost the hot path. Every completion inserts a history row, so each round
drains ``--drain-jobs`` no-op jobs with a real ``Runtime`` (``throughput.py``'s ``drain``)
twice, in fresh databases, with the indexes and with them dropped, alternating (and
swapping which side goes first) so the machine's drift hits both alike. It reports jobs/s
and PostgreSQL CPU microseconds per job (less noisy than wall time on a shared machine),
medians per side.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support.cli import add_output_args, add_server_args, parse_scenarios
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database, with_database
from _support.stats import ms_summary
from awa.db import connect, migrate
from awa.db.queries import sql_text
from awa.web import console_app

#: History starts here; rows are spread evenly over 7 days.
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=7)
QUEUES = "ARRAY['default','mail','billing','reports','webhooks','search','media','ml']"

SCENARIOS = (
    "none",
    "state",
    "state_live",
    "queue",
    "queue_rare",
    "kind",
    "kind_rare",
    "tag",
    "tag_rare",
    "window",
    "window_failed",
    "queue_failed",
    "deep_page",
    "deep_page_failed",
)

_HISTORY = f"""
INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority, original_priority,
    attempt, max_attempts, run_at, created_at, attempted_at, finalized_at, timeout_s, tags,
    metadata, errors, progress, result, unique_key, unique_states, run_lease, claimed_by)
SELECT (g * 8 / ($3::bigint + 1))::smallint, g,
       CASE WHEN g % 100000 = 7 THEN 'rare.kind'
            ELSE 'kind.' || floor(20 * power(random(), 2))::int END,
       CASE WHEN g % 200000 = 11 THEN 'rare-queue'
            ELSE ({QUEUES})[1 + floor(8 * power(random(), 3))::int] END,
       jsonb_build_object('n', g),
       s.state, 2, 2, 1, 25, c.at, c.at, c.at + interval '1 second',
       c.at + interval '2 seconds', NULL,
       CASE WHEN g % 1000000 = 3 THEN ARRAY['rare-tag']
            WHEN g % 10 = 0 THEN ARRAY['tenant:' || (g / 10 % 100)]
            ELSE '{{}}'::text[] END,
       '{{}}'::jsonb,
       CASE WHEN s.state = 'failed'
            THEN '[{{"attempt": 1, "kind": "error", "message": "boom"}}]'::jsonb
            ELSE '[]'::jsonb END,
       NULL, NULL, NULL, NULL, 1, 'bench'
  FROM generate_series($1::bigint, $2::bigint) g,
       LATERAL (SELECT $4::timestamptz + ($5::interval * g / $3::bigint) AS at) c,
       LATERAL (SELECT (CASE WHEN r < 0.90 THEN 'completed' WHEN r < 0.97 THEN 'failed'
                             ELSE 'cancelled' END)::awa.job_state AS state
                  FROM (SELECT random() + g * 0 AS r) x) s
"""

_LIVE = f"""
INSERT INTO awa.jobs (id, kind, queue, args, state, priority, original_priority, attempt,
                      max_attempts, run_at, created_at, attempted_at, heartbeat_at, claimed_by)
SELECT g, 'kind.' || floor(20 * power(random(), 2))::int,
       ({QUEUES})[1 + floor(8 * power(random(), 3))::int], jsonb_build_object('n', g),
       s.state, 2, 2, CASE WHEN s.state = 'running' THEN 1 ELSE 0 END, 25,
       now() + CASE WHEN s.state = 'scheduled' THEN interval '1 day' ELSE interval '0' END,
       now(), CASE WHEN s.state = 'running' THEN now() END,
       CASE WHEN s.state = 'running' THEN now() END,
       CASE WHEN s.state = 'running' THEN 'bench' END
  FROM generate_series($1::bigint, $2::bigint) g,
       LATERAL (SELECT (CASE WHEN r < 0.60 THEN 'available' WHEN r < 0.90 THEN 'scheduled'
                             WHEN r < 0.95 THEN 'retryable' ELSE 'running' END)::awa.job_state
                       AS state
                  FROM (SELECT random() + g * 0 AS r) x) s
"""


async def build(server_url: str, rows: int, live: int, rebuild: bool) -> tuple[str, float]:
    """The database for ``rows``/``live`` (reused when complete); (url, seconds spent)."""
    name = f"awa_bench_console_jobs_{rows}"
    url = with_database(server_url, name)
    admin = await connect(server_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and not rebuild:
            conn = await connect(url)
            try:
                marker = await conn.fetchval("SELECT to_regclass('public.bench_built')")
                done = marker and await conn.fetchval(
                    "SELECT count(*) FROM bench_built WHERE rows = $1 AND live = $2", rows, live
                )
            finally:
                await conn.close()
            if done:
                print(f"reusing {name}")
                conn = await connect(url)
                try:
                    await migrate(conn)  # a newer checkout may add an index: apply it
                    await conn.execute("VACUUM ANALYZE awa.jobs_done")
                finally:
                    await conn.close()
                return url, 0.0
        if exists:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    started = time.perf_counter()
    conn = await connect(url)
    try:
        await migrate(conn)
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'awa' AND tablename = 'jobs_done'"
        )
        for ix in indexes:
            await conn.execute(f"DROP INDEX awa.{ix['indexname']}")
        step = 1_000_000
        for lo in range(1, rows + 1, step):
            hi = min(rows, lo + step - 1)
            await conn.execute(_HISTORY, lo, hi, rows, EPOCH, SPAN)
            print(f"  history rows {hi:,}/{rows:,} ({time.perf_counter() - started:.0f} s)")
        for ix in indexes:  # pg_indexes spells a partitioned index "ON ONLY": not here
            await conn.execute(ix["indexdef"].replace(" ON ONLY ", " ON ", 1))
        print(f"  history indexes rebuilt ({time.perf_counter() - started:.0f} s)")
        await conn.execute(_LIVE, rows + 1, rows + live)
        await conn.execute("SELECT setval('awa.job_id_seq', $1)", rows + live)
        await conn.execute("UPDATE awa.ring_state SET current_slot = 7")
        await conn.execute("VACUUM ANALYZE awa.jobs_done")
        await conn.execute("VACUUM ANALYZE awa.jobs")
        await conn.execute("CREATE TABLE bench_built (rows bigint, live bigint)")
        await conn.execute("INSERT INTO bench_built VALUES ($1, $2)", rows, live)
    finally:
        await conn.close()
    took = time.perf_counter() - started
    print(f"built {name} in {took:.0f} s")
    return url, took


def filters(rows: int) -> dict[str, dict[str, str]]:
    """Query parameters of ``/api/jobs`` per scenario."""
    mid = EPOCH + SPAN / 2
    window = {"since": mid.isoformat(), "until": (mid + timedelta(minutes=15)).isoformat()}
    return {
        "none": {},
        "state": {"state": "failed"},
        "state_live": {"state": "running"},
        "queue": {"queue": "mail"},
        "queue_rare": {"queue": "rare-queue"},
        "kind": {"kind": "kind.3"},
        "kind_rare": {"kind": "rare.kind"},
        "tag": {"tag": "tenant:42"},
        "tag_rare": {"tag": "rare-tag"},
        "window": window,
        "window_failed": {**window, "state": "failed"},
        "queue_failed": {"queue": "mail", "state": "failed"},
        "deep_page": {"before_id": str(rows // 2)},
        "deep_page_failed": {"before_id": str(rows // 2), "state": "failed"},
    }


async def plan_of(url: str, params: dict[str, str]) -> dict[str, Any]:
    """The plan the console's query gets for ``params``: index names, seq scans, and the
    server-side execution time of one run."""
    since = datetime.fromisoformat(params["since"]) if "since" in params else None
    until = datetime.fromisoformat(params["until"]) if "until" in params else None
    before = int(params["before_id"]) if "before_id" in params else None
    args = (params.get("state"), params.get("queue"), params.get("kind"), params.get("tag"))
    conn = await connect(url)
    try:
        async with conn.transaction():
            await conn.execute(sql_text("force_custom_plans"))
            text = sql_text("list_jobs")
            out = await conn.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {text}",
                *args, since, until, before, 50,
            )  # fmt: skip
    finally:
        await conn.close()
    plan = json.loads(out)[0] if isinstance(out, str) else out[0]
    indexes: set[str] = set()
    seq: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            indexes.add(re.sub(r"^jobs_done_\d+_", "jobs_done_*_", node["Index Name"]))
        if node.get("Node Type") == "Seq Scan":
            seq.add(node.get("Relation Name", "?"))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return {
        "indexes": sorted(indexes),
        "seq_scans": sorted(seq),
        "server_ms": round(plan["Execution Time"], 2),
        "shared_buffers_read": plan["Plan"].get("Shared Read Blocks", 0)
        + plan["Plan"].get("Shared Hit Blocks", 0),
    }


async def time_scenario(
    http: httpx.AsyncClient, params: dict[str, str], runs: int
) -> tuple[list[float], int]:
    for _ in range(3):  # warm: connection, statement cache, buffers
        answer = await http.get("/api/jobs", params=params)
        answer.raise_for_status()
    latencies = []
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = await http.get("/api/jobs", params=params)
        latencies.append(time.perf_counter() - t0)
        answer.raise_for_status()
    return latencies, len(answer.json()["jobs"])


#: Migration 0015's indexes: the console's filters' side of the trade.
FILTER_INDEXES = ("jobs_done_queue_id_idx", "jobs_done_kind_id_idx", "jobs_done_tags_idx")


async def completion_cost(server: BenchServer, rounds: int, jobs: int) -> dict[str, Any]:
    """Drain throughput and PostgreSQL CPU with and without ``FILTER_INDEXES``."""
    from throughput import bench_drain  # the drain scenario itself, not a copy

    runs: dict[str, list[dict[str, Any]]] = {"with_indexes": [], "without_indexes": []}
    for r in range(rounds):
        sides = ("with_indexes", "without_indexes")
        for side in sides if r % 2 == 0 else sides[::-1]:  # neither side always goes first
            async with fresh_database(server.url, "drain") as url:
                if side == "without_indexes":
                    conn = await connect(url)
                    try:
                        for name in FILTER_INDEXES:
                            await conn.execute(f"DROP INDEX awa.{name}")
                    finally:
                        await conn.close()
                result = await bench_drain(
                    url, jobs, 50, 50, chunk=5_000, pg_stats=False, timeout=600,
                    server_pid=server.server_pid,
                )  # fmt: skip
            pg_cpu = result.get("postgres_cpu_s")
            runs[side].append(
                {
                    "jobs_per_s": result["jobs_per_s"],
                    "postgres_cpu_us_per_job": round(pg_cpu / jobs * 1e6, 1) if pg_cpu else None,
                    "ok": result["ok"],
                }
            )
            print(f"  completion cost round {r + 1} {side}: {runs[side][-1]}")
    out: dict[str, Any] = {"rounds": rounds, "jobs": jobs, "runs": runs}
    for side, found in runs.items():
        cpu = [x["postgres_cpu_us_per_job"] for x in found if x["postgres_cpu_us_per_job"]]
        out[side] = {
            "median_jobs_per_s": statistics.median(x["jobs_per_s"] for x in found),
            "median_postgres_cpu_us_per_job": statistics.median(cpu) if cpu else None,
        }
    w, wo = out["with_indexes"], out["without_indexes"]
    out["throughput_ratio"] = round(w["median_jobs_per_s"] / wo["median_jobs_per_s"], 3)
    if w["median_postgres_cpu_us_per_job"] and wo["median_postgres_cpu_us_per_job"]:
        out["postgres_cpu_ratio"] = round(
            w["median_postgres_cpu_us_per_job"] / wo["median_postgres_cpu_us_per_job"], 3
        )
    return out


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    url, build_s = await build(server.url, args.rows, args.live, args.rebuild)
    app = console_app(url)
    results: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
            every = filters(args.rows)
            for name in args.scenario_list:
                latencies, found = await time_scenario(http, every[name], args.runs)
                plan = await plan_of(url, every[name])
                results[name] = {
                    "params": every[name],
                    "rows_returned": found,
                    **ms_summary(latencies, with_count=True),
                    "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
                    **plan,
                }
    finally:
        await app.state.close()
    cost = None
    if args.completion_cost:
        cost = await completion_cost(server, args.completion_cost, args.drain_jobs)
    return {
        "benchmark": "console_jobs",
        "rows": args.rows,
        "live": args.live,
        "runs": args.runs,
        "build_s": round(build_s, 1),
        "server": server.kind,
        "fast": args.fast,
        "note": "measured on a shared 2-core machine under load from other work",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scenarios": results,
        "completion_cost": cost,
    }


def render(payload: dict[str, Any]) -> str:
    lines = [
        f"jobs list, {payload['rows']:,} history + {payload['live']:,} live rows, "
        f"{payload['runs']} runs each ({payload['note']})",
        f"{'scenario':<18}{'rows':>5}{'p50 ms':>9}{'p99 ms':>9}{'server ms':>11}  plan",
    ]
    for name, r in payload["scenarios"].items():
        plan = ", ".join(r["indexes"]) or "-"
        if r["seq_scans"]:
            plan += "  SEQ SCAN: " + ", ".join(r["seq_scans"])
        lines.append(
            f"{name:<18}{r['rows_returned']:>5}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['server_ms']:>11.2f}  {plan}"
        )
    cost = payload.get("completion_cost")
    if cost:
        lines.append(
            f"completion cost of the filter indexes ({cost['rounds']} rounds of "
            f"{cost['jobs']:,} no-op jobs drained; medians): "
            f"with {cost['with_indexes']['median_jobs_per_s']:,} jobs/s, "
            f"{cost['with_indexes']['median_postgres_cpu_us_per_job']} PG CPU µs/job; "
            f"without {cost['without_indexes']['median_jobs_per_s']:,} jobs/s, "
            f"{cost['without_indexes']['median_postgres_cpu_us_per_job']} PG CPU µs/job "
            f"(throughput ratio {cost['throughput_ratio']}, PG CPU ratio "
            f"{cost.get('postgres_cpu_ratio')})"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_args(p, data_dir="bench-console-jobs")
    add_output_args(p)
    p.add_argument("--rows", type=int, default=10_000_000, help="history rows (default 10M)")
    p.add_argument("--live", type=int, default=50_000, help="live rows (default 50,000)")
    p.add_argument("--runs", type=int, default=30, help="timed requests per scenario")
    p.add_argument("--rebuild", action="store_true", help="build the database again")
    p.add_argument(
        "--completion-cost",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also drain jobs with and without the filter indexes, ROUNDS times each",
    )
    p.add_argument("--drain-jobs", type=int, default=20_000, help="jobs per completion-cost run")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.scenario_list = parse_scenarios(p, args.scenarios, SCENARIOS)
    if args.rows != 10_000_000:
        args.partial = True  # only the 10M run stands for -latest
    run_and_report(args, run, render, "console_jobs", SCENARIOS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
