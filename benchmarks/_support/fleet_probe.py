"""``fleet.py``'s tooling: the child processes of a fleet, and what the server says about
the fleet's database (connections, statements, leadership).

Every reading here that can run on a connection to another database does (``admin``, a
connection to the server's maintenance database), so it adds nothing to the benchmark
database's transaction count. The one that cannot (the leadership term lives in the
benchmark database) is taken outside the sampled window, on connections closed a second
before it starts (a backend flushes its counters as it exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from _support.statement_log import (
    StatementNamer,
    attribute_transactions,
    group_transactions,
    parse_statement_log,
    read_segment,
)
from awa.db import connect

__all__ = [
    "FleetProcess",
    "activity",
    "enable_statements",
    "holder_pid",
    "leader_term",
    "log_transactions",
    "name_calls",
    "statement_calls",
    "wait_for_new_leader",
]

#: Where the children run, so ``-m _support.fleet_child`` resolves (see ``fleet_child``).
_BENCH_DIR = Path(__file__).resolve().parents[1]

_LEADER_TERM = "SELECT term, holder FROM awa.leader_term"

_STATEMENTS = """
SELECT query, calls FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
"""

_ACTIVITY = """
SELECT coalesce(state, '(none)') AS state, count(*) AS n
  FROM pg_stat_activity
 WHERE datname = $1 AND backend_type = 'client backend'
 GROUP BY 1
"""


class FleetProcess:
    """One child process (``_support.fleet_child``) running ``count`` runtimes."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.proc: asyncio.subprocess.Process | None = None
        self.runtimes: list[str] = []
        self.ready_s: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float) -> None:
        """Spawn the child and wait for its READY line (its runtimes all started)."""
        t0 = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "_support.fleet_child",
            self.url,
            str(self.count),
            stdout=asyncio.subprocess.PIPE,
            cwd=str(_BENCH_DIR),
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            await self.stop(0)
            raise TimeoutError(f"fleet child {self.pid} not ready after {timeout:g} s") from None
        text = line.decode(errors="replace").strip()
        if not text.startswith("READY "):
            await self.stop(0)
            raise RuntimeError(f"fleet child {self.pid} failed to start (exit before READY)")
        self.runtimes = list(json.loads(text[len("READY ") :])["runtimes"])
        self.ready_s = round(time.monotonic() - t0, 2)

    def sigkill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)

    async def stop(self, grace: float) -> None:
        """SIGTERM (the child stops its runtimes), SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(self.proc.wait(), grace if grace > 0 else 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


def holder_pid(instance_id: str | None) -> int | None:
    """The pid in a default instance id (``host:pid:suffix``, ``awa.config.new_instance_id``)."""
    parts = (instance_id or "").split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


async def leader_term(url: str) -> tuple[int, str | None]:
    """The leadership term and its holder (``awa.leader_term``): each election won bumps
    the term, so the difference of two readings is the number of leadership changes."""
    conn = await connect(url)
    try:
        row = await conn.fetchrow(_LEADER_TERM)
    finally:
        await conn.close()
    return (0, None) if row is None else (int(row["term"]), row["holder"])


async def wait_for_new_leader(
    url: str, after_term: int, not_pid: int, timeout: float
) -> tuple[float | None, int, str | None]:
    """Poll the term every 20 ms until a term after ``after_term`` is held by a runtime
    outside process ``not_pid``; (seconds waited or None, term, holder)."""
    conn = await connect(url)
    t0 = time.monotonic()
    term, holder = after_term, None
    try:
        while time.monotonic() - t0 < timeout:
            row = await conn.fetchrow(_LEADER_TERM)
            if row is not None:
                term, holder = int(row["term"]), row["holder"]
                if term > after_term and holder_pid(holder) not in (None, not_pid):
                    return time.monotonic() - t0, term, holder
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    return None, term, holder


async def activity(admin: Any, dbname: str) -> dict[str, int]:
    """Client connections to ``dbname`` by state (``pg_stat_activity``, read from ``admin``)."""
    rows = await admin.fetch(_ACTIVITY, dbname)
    return {str(r["state"]): int(r["n"]) for r in rows}


async def enable_statements(admin: Any) -> bool:
    """Make ``pg_stat_statements`` readable from ``admin``'s database (it shows every
    database's statements there), so reading it opens no connection to the measured one,
    whose opening statements would count as the fleet's. False when the server does not
    preload it or the role may not create it."""
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await admin.fetchval("SELECT count(*) FROM pg_stat_statements")
    except asyncpg.PostgresError:
        return False
    return True


async def statement_calls(admin: Any, dbname: str) -> dict[str, int]:
    """Calls so far per normalised statement of ``dbname`` (``pg_stat_statements``, read
    from ``admin`` once ``enable_statements`` said yes)."""
    rows = await admin.fetch(_STATEMENTS, dbname)
    return {str(r["query"]): int(r["calls"]) for r in rows}


def name_calls(
    before: dict[str, int], after: dict[str, int], seconds: float, runtimes: int
) -> list[dict[str, Any]]:
    """Statement calls between two ``statement_calls`` readings, named after the query of
    ``src/awa/sql`` they are (``StatementNamer``), most called first. A label shared by
    several texts (BEGIN and COMMIT) counts its most-called one."""
    namer = StatementNamer()
    calls: Counter[str] = Counter()
    for query, n in after.items():
        label = namer.name(query)
        calls[label] = max(calls[label], n - before.get(query, 0))
    return [
        {
            "statement": label,
            "source": namer.source(label),
            "calls": c,
            "calls_per_s": round(c / seconds, 3),
            "calls_per_s_per_runtime": round(c / seconds / runtimes, 4),
        }
        for label, c in calls.most_common()
        if c > 0
    ]


def log_transactions(log_file: Path, start: int, stop: int, seconds: float) -> dict[str, Any]:
    """Transactions in the server log between two offsets (``log_statement = 'all'`` set
    on the measured database only), grouped per backend and named after their source
    (``_support/statement_log.py``, as in ``lanes.py``'s idle scenario).

    Why not only ``pg_stat_database``: a backend adds its transaction count to it when it
    flushes other pending statistics, or when it exits. A transaction that touches no
    table (the election's ``pg_try_advisory_lock``) leaves nothing else pending, so a
    follower's attempts are mostly counted only when its connection closes: a fleet of
    followers looks cheaper there than it is. The log sees every statement when it runs."""
    txs = group_transactions(parse_statement_log(read_segment(log_file, start, stop)))
    return {
        "tx": len(txs),
        "tx_per_s": round(len(txs) / seconds, 3),
        "backends": len({pid for pid, _ in txs}),
        "by_source": attribute_transactions(txs, StatementNamer(), seconds)[:15],
    }
