"""Shared helpers for awa's benchmark scripts: a server to run against, a throwaway migrated
database per scenario, machine facts for the results file, and small statistics helpers.

Kept free of anything scenario-specific so later benchmarks can reuse it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
# Benchmark this checkout's src/ even when an installed awa points elsewhere.
if str(REPO_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "src"))

import awa  # noqa: E402
from awa.db import connect, migrate  # noqa: E402

__all__ = [
    "BenchServer",
    "CpuMeter",
    "DurabilityCheck",
    "cpu_busy_since",
    "cpu_busy_snapshot",
    "fresh_database",
    "machine_info",
    "percentiles",
    "pg_stat_statements_top",
    "reset_pg_stats",
    "run_and_report",
    "server_cpu_seconds",
    "wait_for_quiet",
    "wal_io_snapshot",
    "with_database",
    "write_results",
]

log = logging.getLogger("awa.bench")

#: Which copy of awa is being measured (should be this checkout's src/awa).
AWA_SOURCE = str(Path(awa.__file__).resolve().parent)

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

#: Settings whose values decide whether a commit waits for the disk.
_DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


# --------------------------------------------------------------------------- server


@dataclass
class DurabilityCheck:
    requested_durable: bool
    settings: dict[str, str] = field(default_factory=dict)
    corrected: dict[str, str] = field(default_factory=dict)

    @property
    def effective_durable(self) -> bool:
        return self.settings.get("fsync") == "on" and self.settings.get("synchronous_commit") in (
            "on",
            "remote_apply",
            "remote_write",
            "local",
        )


class BenchServer:
    """``AWA_DATABASE_URL`` when set, else the embedded PostgreSQL in ``data_dir``.

    ``durable=True`` is what users run (fsync and synchronous commit on); ``False`` turns
    both off, like the test suite. The embedded server keeps settings applied by an earlier
    ``--fast`` run (``EmbeddedPostgres(durable=True)`` only adds, never resets), so
    ``ensure_durability`` resets them when a durable run is asked for.
    """

    def __init__(self, data_dir: str, *, durable: bool) -> None:
        self.external_url = os.environ.get("AWA_DATABASE_URL") or None
        self.data_dir = data_dir
        self.durable = durable
        self._embedded: Any = None
        self.url = ""

    @property
    def kind(self) -> str:
        return "external (AWA_DATABASE_URL)" if self.external_url else "embedded"

    def start(self) -> str:
        if self.external_url:
            self.url = self.external_url
            return self.url
        from awa.db.embedded import EmbeddedPostgres

        self._embedded = EmbeddedPostgres(self.data_dir, durable=self.durable)
        self.url = self._embedded.start()
        return self.url

    @property
    def server_pid(self) -> int | None:
        """The embedded postmaster's pid (None for an external server)."""
        if self._embedded is None:
            return None
        try:
            pid_file = Path(self._embedded.data_dir) / "postmaster.pid"
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def log_file(self) -> Path | None:
        """The embedded server's log (``pg_ctl -l``: ``<data_dir>/log``); None for an
        external server, whose log this script cannot assume it may read."""
        if self._embedded is None:
            return None
        path = Path(self._embedded.data_dir) / "log"
        return path if path.is_file() else None

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    async def ensure_durability(self) -> DurabilityCheck:
        """Read the durability settings; on the embedded server, make a durable run really
        durable (ALTER SYSTEM RESET + reload: all three settings are reloadable)."""
        check = DurabilityCheck(self.durable)
        conn = await connect(self.url)
        try:
            check.settings = await _settings(conn)
            if self.durable and self._embedded is not None and not check.effective_durable:
                stale = {k: v for k, v in check.settings.items() if v == "off"}
                for name in stale:
                    await conn.execute(f"ALTER SYSTEM RESET {name}")
                await conn.execute("SELECT pg_reload_conf()")
                await asyncio.sleep(0.2)
                await conn.close()
                conn = await connect(self.url)
                check.settings = await _settings(conn)
                check.corrected = stale
                log.warning("embedded server had %s left from a --fast run: reset them", stale)
        finally:
            await conn.close()
        return check


async def _settings(conn: Any) -> dict[str, str]:
    return {name: str(await conn.fetchval(f"SHOW {name}")) for name in _DURABILITY_SETTINGS}


@asynccontextmanager
async def fresh_database(
    server_url: str, label: str, *, migrate_schema: bool = True
) -> AsyncIterator[str]:
    """CREATE DATABASE, migrate it with ``awa.db.migrate`` (unless ``migrate_schema`` is
    False: an empty database, e.g. for another system's own migrations), yield its URL,
    DROP it after."""
    name = f"awa_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    try:
        if migrate_schema:
            conn = await connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield url
    finally:
        admin = await connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --------------------------------------------------------------------- pg statistics


async def reset_pg_stats(url: str) -> None:
    """Enable pg_stat_statements in this database and forget what it saw so far."""
    conn = await connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        dbid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        await conn.execute("SELECT pg_stat_statements_reset(0, $1, 0)", dbid)
    finally:
        await conn.close()


async def pg_stat_statements_top(url: str, limit: int = 12) -> list[dict[str, Any]]:
    """The statements of this database by total execution time (commit time excluded)."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            """SELECT calls, rows, total_exec_time, mean_exec_time, max_exec_time,
                      shared_blks_hit, shared_blks_read, wal_records, wal_fpi, wal_bytes,
                      regexp_replace(left(query, 4000), '\\s+', ' ', 'g') AS query
                 FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND query NOT ILIKE '%pg_stat_statements%'
                ORDER BY total_exec_time DESC
                LIMIT $1""",
            limit,
        )
    finally:
        await conn.close()
    return [
        {
            "calls": int(r["calls"]),
            "rows": int(r["rows"]),
            "total_ms": round(float(r["total_exec_time"]), 2),
            "mean_ms": round(float(r["mean_exec_time"]), 4),
            "max_ms": round(float(r["max_exec_time"]), 3),
            "rows_per_call": round(int(r["rows"]) / max(1, int(r["calls"])), 1),
            "shared_blks_hit": int(r["shared_blks_hit"]),
            "shared_blks_read": int(r["shared_blks_read"]),
            "wal_records": int(r["wal_records"]),
            "wal_fpi": int(r["wal_fpi"]),
            "wal_bytes": int(r["wal_bytes"]),
            "query": str(r["query"]),
        }
        for r in rows
    ]


async def wal_io_snapshot(url: str) -> dict[str, float]:
    """Cluster-wide WAL writes/fsyncs (PostgreSQL 18 ``pg_stat_io``; empty elsewhere)."""
    conn = await connect(url)
    try:
        try:
            row = await conn.fetchrow(
                """SELECT coalesce(sum(writes), 0) AS writes, coalesce(sum(fsyncs), 0) AS fsyncs,
                          coalesce(sum(fsync_time), 0) AS fsync_ms,
                          coalesce(sum(write_time), 0) AS write_ms
                     FROM pg_stat_io WHERE object = 'wal'"""
            )
        except Exception:  # older servers: no WAL rows in pg_stat_io
            return {}
    finally:
        await conn.close()
    assert row is not None
    return {k: float(row[k]) for k in ("writes", "fsyncs", "fsync_ms", "write_ms")}


# ---------------------------------------------------------------------- machine facts


def cpu_busy_snapshot() -> tuple[float, float] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def cpu_busy_since(before: tuple[float, float] | None) -> float | None:
    """Machine-wide CPU busy fraction (0..1 of all cores) since ``before``."""
    after = cpu_busy_snapshot()
    if before is None or after is None or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


def process_tree_cpu_seconds(root_pid: int | None) -> float | None:
    """User+system CPU seconds of ``root_pid`` and its live children (Linux /proc)."""
    if root_pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        if root_pid in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def server_cpu_seconds(server_pid: int | None) -> float | None:
    """CPU seconds of a server and all its backends, including backends that already
    exited: the postmaster reaps them, so their time is in its ``cutime``/``cstime``
    (``process_tree_cpu_seconds`` sees only live processes). Linux /proc only."""
    if server_pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{server_pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    reaped = (int(fields[13]) + int(fields[14])) / tick
    live = process_tree_cpu_seconds(server_pid)
    return None if live is None else live + reaped


class CpuMeter:
    """CPU used during a phase: this process, the benchmark's PostgreSQL (embedded only)
    and everything else on the machine (``other_cores``: neighbours, i.e. noise)."""

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._self = _self_cpu()
        self._pg = process_tree_cpu_seconds(self._server_pid)
        self._busy = cpu_busy_snapshot()
        return self

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall
        self.client_cpu_s = _self_cpu() - self._self
        pg = process_tree_cpu_seconds(self._server_pid)
        self.pg_cpu_s = None if pg is None or self._pg is None else pg - self._pg
        self.busy = cpu_busy_since(self._busy)

    def summary(self) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {
            "client_cpu_s": round(self.client_cpu_s, 3),
            "client_cores": round(self.client_cpu_s / self.wall, 2),
            "machine_cpu_busy": self.busy,
        }
        if self.pg_cpu_s is not None:
            out["postgres_cpu_s"] = round(self.pg_cpu_s, 3)
            out["postgres_cores"] = round(self.pg_cpu_s / self.wall, 2)
            if self.busy is not None:
                other = self.busy * cores - (self.client_cpu_s + self.pg_cpu_s) / self.wall
                out["other_cores"] = round(max(0.0, other), 2)
        return out


def _self_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wait_for_quiet(max_wait: float, threshold: float = 0.15, window: float = 1.0) -> float:
    """Wait (up to ``max_wait`` s) for a ``window`` in which the machine is less than
    ``threshold`` busy, so a shared machine's neighbours distort less; return the wait."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        before = cpu_busy_snapshot()
        if before is None:
            break
        await asyncio.sleep(window)
        busy = cpu_busy_since(before)
        if busy is not None and busy < threshold:
            break
    return round(time.perf_counter() - start, 1)


def _git_dirty() -> bool | None:
    """True when src/ has uncommitted changes (read-only ``git status``)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


async def machine_info(server: BenchServer, durability: DurabilityCheck) -> dict[str, Any]:
    conn = await connect(server.url)
    try:
        pg_version = str(await conn.fetchval("SHOW server_version"))
        pg_full = str(await conn.fetchval("SELECT version()"))
        shared_buffers = str(await conn.fetchval("SHOW shared_buffers"))
    finally:
        await conn.close()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "postgres_version": pg_version,
        "postgres_full_version": pg_full,
        "postgres_shared_buffers": shared_buffers,
        "server": server.kind,
        "durable": durability.effective_durable,
        "durable_requested": durability.requested_durable,
        "durability_settings": durability.settings,
        "durability_corrected": durability.corrected,
        "load_average_at_start": load,
        "git_commit": _git_commit(),
        "git_dirty_src": _git_dirty(),
        "awa_source": AWA_SOURCE,
    }


# ------------------------------------------------------------------------- statistics


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[str, float]:
    """Linear-interpolated percentiles (like numpy's default); ``{}`` for no data."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, float] = {}
    last = len(ordered) - 1
    for p in points:
        rank = p / 100 * last
        low = int(rank)
        high = min(low + 1, last)
        value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
        out[f"p{p:g}"] = value
    return out


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, BenchServer], Awaitable[dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
    stem: str,
    scenarios: Sequence[str],
) -> dict[str, Any]:
    """What every benchmark's ``main`` does: start the embedded server (``--data-dir``,
    ``--fast``), ``run``, stop it, print ``render``'s text and write the JSON (unless
    ``--no-save``; ``--quick`` writes ``<stem>-quick`` only with ``--save``). Only a run of
    every scenario replaces ``<stem>-latest.json``. Returns the payload."""
    server = BenchServer(args.data_dir, durable=not args.fast)
    server.start()
    try:
        payload = asyncio.run(run(args, server))
    finally:
        server.stop()
    print(render(payload))
    if args.save or not (args.no_save or args.quick):
        complete = set(args.scenario_list) == set(scenarios)
        name = f"{stem}-quick" if args.quick else stem
        paths = write_results(payload, name, directory=args.output_dir, latest=complete)
        print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return payload


def write_results(
    payload: dict[str, Any], stem: str, *, directory: Path = RESULTS_DIR, latest: bool = True
) -> list[Path]:
    """Write ``<stem>-<timestamp>.json`` and, unless ``latest`` is False (a run of only some
    scenarios must not replace the full run that ``-latest`` stands for),
    ``<stem>-latest.json``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    paths = [directory / f"{stem}-{stamp}.json"]
    if latest:
        paths.append(directory / f"{stem}-latest.json")
    for path in paths:
        path.write_text(text, encoding="utf-8")
    return paths
