"""What a fleet of idle runtimes costs one PostgreSQL, and how fast leadership fails over
(a script, not a test; issue 19).

Two scenarios, each in its own fresh migrated database:

- ``single``: one process with one default runtime (the leader);
- ``fleet``: ``--processes`` processes with ``--runtimes`` default runtimes in all (each its
  own ``awa.Client``, one handler on queue ``default``, maintenance on: every runtime is an
  election candidate), nothing queued.

For each: a background window with no client (autovacuum), the processes start
(``_support/fleet_child.py``, READY once its runtimes all started), ``--settle`` seconds
(backends flush ``pg_stat_database`` counters up to ~10 s late), then ``xact_commit +
xact_rollback`` of the database over ``--window`` seconds, read from a connection to another
database. Net = raw - background; per runtime = net / runtimes. Around the window:
connections of the database by state (``pg_stat_activity``), statement calls
(``pg_stat_statements``) and the leadership term (``awa.leader_term``: each election won
bumps it, so its difference is the leader churn). Then, in ``fleet``, ``--failovers`` times:
SIGKILL the process whose runtime holds the term, time until a runtime of another process
holds a newer one, and start a replacement process so the next failover sees the full fleet.

``python benchmarks/fleet.py``; ``--quick`` is a seconds-long smoke run (2 x 2 runtimes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support.cli import add_output_args, add_server_args
from _support.cpu import cpu_busy_since, cpu_busy_snapshot, process_tree_cpu_seconds
from _support.cpu import server_cpu_seconds as pg_cpu
from _support.fleet_probe import (
    FleetProcess,
    activity,
    enable_statements,
    holder_pid,
    leader_term,
    log_transactions,
    name_calls,
    statement_calls,
    wait_for_new_leader,
)
from _support.machine import describe_machine, machine_info
from _support.pg_stats import xact_count
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from awa.db import connect

SCENARIOS = ("single", "fleet")
#: Issue 19's acceptance: an idle runtime costs at most this, alone and in a fleet of 100.
AIM_TX_PER_S_PER_RUNTIME = 1.0
#: A failover not seen within this is recorded as failed.
FAILOVER_TIMEOUT = 60.0
#: Connections above the fleet's own for the benchmark's probes and superuser slots.
CONNECTION_MARGIN = 50


def _loads(pids: Sequence[int], server: BenchServer) -> tuple[float, float | None]:
    """(CPU seconds of the fleet's processes, of PostgreSQL and its backends) so far."""
    fleet = sum(process_tree_cpu_seconds(pid) or 0.0 for pid in pids)
    return fleet, pg_cpu(server.server_pid)


def start_timeout(runtimes: int) -> float:
    """How long a process may take to start ``runtimes`` runtimes (generous: busy VM)."""
    return 60.0 + 5.0 * runtimes


def _load_summary(
    before: tuple[float, float | None],
    after: tuple[float, float | None],
    busy: float | None,
    wall: float,
) -> dict[str, Any]:
    """Cores used by the fleet's processes, by PostgreSQL and by everything else (noise)."""
    fleet = (after[0] - before[0]) / wall
    out: dict[str, Any] = {"fleet_cores": round(fleet, 3), "machine_cpu_busy": busy}
    if before[1] is not None and after[1] is not None:
        pg = (after[1] - before[1]) / wall
        out["postgres_cores"] = round(pg, 3)
        if busy is not None:
            other = busy * (os.cpu_count() or 1) - fleet - pg
            out["other_cores"] = round(max(0.0, other), 2)
    return out


async def _count_window(admin: Any, dbname: str, window: float) -> dict[str, Any]:
    x0, t0 = await xact_count(admin, dbname), time.perf_counter()
    await asyncio.sleep(window)
    x1, t1 = await xact_count(admin, dbname), time.perf_counter()
    return {"xacts": x1 - x0, "seconds": round(t1 - t0, 2), "tx_per_s": (x1 - x0) / (t1 - t0)}


async def _idle_window(
    args: argparse.Namespace,
    server: BenchServer,
    admin: Any,
    db: str,
    procs: list[FleetProcess],
    statements: bool,
) -> dict[str, Any]:
    """The sampled window: transactions, connections, statements, leader churn."""
    dbname = urlsplit(db).path.lstrip("/")
    term0, holder0 = await leader_term(db)
    await asyncio.sleep(1.0)  # that connection flushes its counts as it exits
    calls0 = await statement_calls(admin, dbname) if statements else None
    pids = [p.pid for p in procs]
    log_file = server.log_file if args.statement_log else None
    load0, busy0 = _loads(pids, server), cpu_busy_snapshot()
    x0, t0 = await xact_count(admin, dbname), time.perf_counter()
    offset0 = log_file.stat().st_size if log_file is not None else 0
    samples: list[dict[str, int]] = []
    while (left := args.window - (time.perf_counter() - t0)) > 0:
        await asyncio.sleep(min(5.0, left))
        samples.append(await activity(admin, dbname))
    x1, t1 = await xact_count(admin, dbname), time.perf_counter()
    offset1 = log_file.stat().st_size if log_file is not None else 0
    load = _load_summary(load0, _loads(pids, server), cpu_busy_since(busy0), t1 - t0)
    calls1 = await statement_calls(admin, dbname) if statements else None
    term1, holder1 = await leader_term(db)
    runtimes = sum(p.count for p in procs)
    totals = [sum(s.values()) for s in samples]
    named = (
        name_calls(calls0, calls1, t1 - t0, runtimes)
        if calls0 is not None and calls1 is not None
        else None
    )
    return {
        "seconds": round(t1 - t0, 2),
        "xacts": x1 - x0,
        "tx_per_s": (x1 - x0) / (t1 - t0),
        "connections": {
            "total": totals[-1],
            "max": max(totals),
            "min": min(totals),
            "by_state": samples[-1],
            "per_runtime": round(totals[-1] / runtimes, 2),
            "samples": len(samples),
        },
        "leader": {
            "term_before": term0,
            "term_after": term1,
            "changes": term1 - term0,
            "holder_before": holder0,
            "holder_after": holder1,
        },
        "log": (
            None if log_file is None else log_transactions(log_file, offset0, offset1, t1 - t0)
        ),
        "statements_per_s": (
            None if named is None else round(sum(r["calls"] for r in named) / (t1 - t0), 3)
        ),
        "statements": named,
        "load": load,
    }


async def _failovers(db: str, procs: list[FleetProcess], count: int) -> list[dict[str, Any]]:
    """SIGKILL the leader's process ``count`` times; each time, the seconds until a runtime
    of another process holds a newer term. The killed process is replaced (not timed)."""
    runs: list[dict[str, Any]] = []
    for i in range(count):
        term, holder = await leader_term(db)
        pid = holder_pid(holder)
        victim = next((p for p in procs if p.alive and p.pid == pid), None)
        if victim is None:
            runs.append({"term": term, "holder": holder, "error": "leader in no fleet process"})
            break
        victim.sigkill()
        found = await wait_for_new_leader(db, term, victim.pid, FAILOVER_TIMEOUT)
        waited, new_term, new_holder = found
        await victim.stop(0)
        others = {rid for p in procs if p.alive for rid in p.runtimes}
        runs.append(
            {
                "killed_pid": victim.pid,
                "killed_runtimes": victim.count,
                "term_before": term,
                "term_after": new_term,
                "new_holder": new_holder,
                "failover_s": None if waited is None else round(waited, 3),
                "ok": waited is not None and new_holder in others,
            }
        )
        print(f"    failover {i + 1}: {runs[-1]['failover_s']} s", file=sys.stderr, flush=True)
        if i < count - 1:
            fresh = FleetProcess(db, victim.count)
            await fresh.start(start_timeout(victim.count))
            procs[procs.index(victim)] = fresh
            await asyncio.sleep(2.0)  # the newcomers' first election attempts pass
    return runs


async def _scenario(
    args: argparse.Namespace, server: BenchServer, processes: int, runtimes: int, failovers: int
) -> dict[str, Any]:
    label = "single" if runtimes == 1 else "fleet"
    per_process = [runtimes // processes + (i < runtimes % processes) for i in range(processes)]
    async with fresh_database(server.url, label) as db:
        dbname = urlsplit(db).path.lstrip("/")
        admin = await connect(server.url)
        # Without pg_stat_statements, the window goes without statement counts.
        statements = await enable_statements(admin)
        if args.statement_log:  # every statement of this database only, logged
            await admin.execute(f"ALTER DATABASE \"{dbname}\" SET log_statement = 'all'")
        procs = [FleetProcess(db, n) for n in per_process]
        try:
            await asyncio.sleep(1.0)
            print(f"  {label}: background {args.window:g}s", file=sys.stderr, flush=True)
            background = await _count_window(admin, dbname, args.window)
            t0 = time.monotonic()
            await asyncio.gather(*(p.start(start_timeout(p.count)) for p in procs))
            started_s = round(time.monotonic() - t0, 2)
            ready_s = [p.ready_s for p in procs]
            print(
                f"  {label}: {runtimes} runtimes in {processes} processes started in "
                f"{started_s:g}s; settle {args.settle:g}s + window {args.window:g}s",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(args.settle)
            window = await _idle_window(args, server, admin, db, procs, statements)
            alive = all(p.alive for p in procs)
            runs = await _failovers(db, procs, failovers) if failovers else []
        finally:
            await asyncio.gather(*(p.stop(30.0) for p in procs))
            await admin.close()
    net = window["tx_per_s"] - background["tx_per_s"]
    # The figure judged: the log's count (every transaction, see log_transactions), else
    # pg_stat_statements' statement count (an upper bound), else pg_stat_database's.
    if window["log"] is not None:
        judged, basis = window["log"]["tx_per_s"], "server log (log_statement = all)"
    elif window["statements_per_s"] is not None:
        judged, basis = window["statements_per_s"], "pg_stat_statements calls (upper bound)"
    else:
        judged, basis = net, "pg_stat_database, net of background (undercounts)"
    per_runtime = judged / runtimes
    times = [r["failover_s"] for r in runs if r.get("failover_s") is not None]
    return {
        "runtimes": runtimes,
        "processes": processes,
        "runtimes_per_process": per_process,
        "started_s": started_s,
        "process_ready_s": ready_s,
        "settle_s": args.settle,
        "background": {**background, "tx_per_s": round(background["tx_per_s"], 3)},
        "window": {**window, "tx_per_s": round(window["tx_per_s"], 3)},
        "raw_tx_per_s": round(window["tx_per_s"], 3),
        "net_tx_per_s": round(net, 3),
        "net_tx_per_s_per_runtime": round(net / runtimes, 4),
        "tx_per_s": round(judged, 3),
        "tx_per_s_per_runtime": round(per_runtime, 4),
        "tx_basis": basis,
        "aim_tx_per_s_per_runtime": AIM_TX_PER_S_PER_RUNTIME,
        "aim_met": per_runtime <= AIM_TX_PER_S_PER_RUNTIME,
        "connections_per_runtime": window["connections"]["per_runtime"],
        "leader_changes_in_window": window["leader"]["changes"],
        "failovers": runs,
        "failover_max_s": max(times) if times else None,
        "ok": alive and all(r.get("ok") for r in runs) and len(runs) == failovers,
    }


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    info = await machine_info(server, await server.ensure_durability())
    args.statement_log = info["statement_log"] = await server.ensure_live_log()
    try:
        return await _run(args, server, info)
    finally:
        await server.restore_max_connections()


async def _run(args: argparse.Namespace, server: BenchServer, info: Any) -> dict[str, Any]:
    single = await _scenario(args, server, 1, 1, 0)
    # The single runtime is the leader, the one holding the most connections: size the
    # server for a fleet of those (plus the short-lived ones of start-up).
    per_runtime = single["window"]["connections"]["max"] + 1
    wanted = per_runtime * args.runtimes + CONNECTION_MARGIN
    max_connections = await server.ensure_max_connections(wanted)
    if max_connections < wanted:
        raise SystemExit(
            f"fleet.py: max_connections is {max_connections}; {args.runtimes} runtimes need "
            f"about {wanted} (raise it on the server given by AWA_DATABASE_URL)"
        )
    fleet = await _scenario(args, server, args.processes, args.runtimes, args.failovers)
    single_conns = single["window"]["connections"]["total"]
    fleet_conns = fleet["window"]["connections"]["total"]
    return {
        "benchmark": "fleet",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "params": {
            "runtimes": args.runtimes,
            "processes": args.processes,
            "window_s": args.window,
            "settle_s": args.settle,
            "failovers": args.failovers,
            "max_connections": max_connections,
        },
        "results": {
            "single": single,
            "fleet": fleet,
            # The single runtime leads; in the fleet one leads and the rest follow.
            "follower_connections": (
                round((fleet_conns - single_conns) / (args.runtimes - 1), 2)
                if args.runtimes > 1
                else None
            ),
            "ok": single["ok"] and fleet["ok"],
        },
    }


def render(payload: dict[str, Any]) -> str:
    r = payload["results"]
    lines = [describe_machine(payload["machine"])]
    head = f"{'scenario':<8} {'runtimes':>8} {'procs':>5} {'conns/rt':>8} {'bg tx/s':>8}"
    head += f" {'net tx/s':>8} {'net/rt':>7} {'tx/s':>8} {'tx/s/rt':>7} {'churn':>5}  aim"
    lines += [
        "pg_stat_database: bg, net (undercounts table-less transactions); tx/s: every"
        " transaction (basis per scenario below); aim: <= 1.0 tx/s per runtime",
        head,
    ]
    for name in SCENARIOS:
        s = r[name]
        lines.append(
            f"{name:<8} {s['runtimes']:>8} {s['processes']:>5} {s['connections_per_runtime']:>8}"
            f" {s['background']['tx_per_s']:>8.3f} {s['net_tx_per_s']:>8.3f}"
            f" {s['net_tx_per_s_per_runtime']:>7.3f} {s['tx_per_s']:>8.3f}"
            f" {s['tx_per_s_per_runtime']:>7.3f} {s['leader_changes_in_window']:>5}"
            f"  {'met' if s['aim_met'] else 'MISSED'} ({s['tx_basis']})"
        )
    lines.append(f"follower connections: {r['follower_connections']} per runtime")
    fleet = r["fleet"]
    times = [f"{f['failover_s']} s" if f.get("ok") else "FAILED" for f in fleet["failovers"]]
    lines.append(f"failovers: {', '.join(times) or 'none'}; max {fleet['failover_max_s']} s")
    log = fleet["window"]["log"]
    if log is not None:
        lines.append("fleet transactions by source (server log):")
        for row in log["by_source"][:8]:
            lines.append(f"  {row['tx_per_s']:>8.3f}/s  {row['source']}")
    lines.append("fleet statements (pg_stat_statements):")
    for row in (fleet["window"]["statements"] or [])[:8]:
        lines.append(
            f"  {row['calls_per_s']:>8.3f}/s {row['calls_per_s_per_runtime']:>7.4f}/s/rt"
            f"  {row['statement']}"
            + (f" ({row['source']})" if row["source"] != row["statement"] else "")
        )
    lines.append(f"fleet window load: {fleet['window']['load']}")
    lines.append("ok" if r["ok"] else "NOT OK: a process died or a failover was not seen")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_server_args(p, data_dir="bench-pgdata-fleet")
    add_output_args(p)
    p.add_argument("--runtimes", type=int, help="runtimes in the fleet (default 100)")
    p.add_argument("--processes", type=int, help="processes they run in (default 4)")
    p.add_argument("--window", type=float, help="sampled idle window, s (default 60)")
    p.add_argument("--settle", type=float, help="wait before the window, s (default 20)")
    p.add_argument("--failovers", type=int, help="leader kills (default 3)")
    p.add_argument("--quick", action="store_true", help="2 x 2 runtimes, 3 s windows, 1 kill")
    args = p.parse_args(argv)
    quick = {"runtimes": 4, "processes": 2, "window": 3.0, "settle": 3.0, "failovers": 1}
    full = {"runtimes": 100, "processes": 4, "window": 60.0, "settle": 20.0, "failovers": 3}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not 1 <= args.processes <= args.runtimes:
        p.error("need 1 <= --processes <= --runtimes")
    if args.failovers > 0 and args.processes < 2:
        p.error("a failover needs another process to take over: --processes >= 2")
    if args.window < 1 or args.settle < 0 or args.failovers < 0:
        p.error("--window >= 1, --settle >= 0 and --failovers >= 0")
    args.scenario_list = list(SCENARIOS)
    # Figures of a run that is not the default fleet must not replace fleet-latest.json.
    args.partial = not args.quick and any(getattr(args, k) != v for k, v in full.items())
    payload = run_and_report(args, run, render, "fleet", SCENARIOS)
    return 0 if payload["results"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
