"""awa long-horizon lanes study (a script, not a test): a steady mixed workload for minutes
to hours, sampled every second, in lane mode ``split`` and/or ``single``.

Why: the short lanes benchmark (``lanes.py``) shows that split lanes keep promotion on time
for a few seconds of overload. A runtime that runs for hours must also keep its tables
vacuumed, its memory flat and every job accounted for while housekeeping has real work.
This script runs one runtime (default ``RuntimeConfig``, ``MaintenanceConfig(mode=...)``)
against a fresh database with:

- a steady producer (``--rate`` jobs/s, one ``client.insert`` each) of mixed kinds: plain
  short jobs; scheduled jobs (``delay`` 1–30 s); jobs that fail their first attempt and are
  retried with backoff (some never succeed and end ``failed``); jobs with a deadline
  (``timeout=``) that some attempts overrun;
- a cron schedule (``client.schedule``) firing every 5 s;
- hygiene pressure (on by default, from a third of the run on): a terminal-history backlog
  that expires at that moment, so ``cleanup`` deletes it in batches, and a slow user hygiene
  branch whose body holds one of its lane's connections in ``pg_sleep(1)`` every 0.1 s.
  The first third is the baseline the pressure phase is compared with;
- with ``--backlog``, the big-table backlog of issue 19 underneath all of it (10M history
  rows, 1M live rows, 100k unique keys, 200k jobs of a kind nobody handles at the head of
  the workload's own queue; ``_support.backlog``), built once into a template database
  that every run copies, so the hour shows whether hygiene that must not scale with the
  tables keeps the runtime flat when they are big.

Every second it records completed jobs/s, queue depth by state, promotion lateness of the
scheduled jobs finished in that second (``attempted_at - run_at``), every maintenance
branch's last duration / lateness / overrun episodes (the leader's in-process stats),
dead tuples and sizes of the ``awa`` schema's tables, connections, this process's RSS and
the machine's CPU load. Output: NDJSON samples, a summary JSON with verdicts (zero lost
jobs, bounded dead tuples, stable RSS, split SLO lateness unaffected by the pressure) and
PNG plots. Run ``python benchmarks/long_horizon.py --help``; ``--label`` keeps concurrent
runs' files apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support import REPO_ROOT, RESULTS_DIR
from _support.allocations import AllocationTracer
from _support.backlog import BacklogSizes, cloned_database, template_database
from _support.cli import fmt_duration, parse_duration
from _support.cpu import cpu_busy_snapshot, own_cpu_seconds, process_tree_cpu_seconds, rss_mb
from _support.machine import describe_machine, machine_info
from _support.plots import publish_latest, render_plots
from _support.server import BenchServer, fresh_database
from _support.stats import ms_summary, percentiles, slope_per_hour
from awa.config import MaintenanceConfig, RuntimeConfig
from awa.db import connect
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult

log = logging.getLogger("awa.bench.long_horizon")

MODES = ("split", "single")
TERMINAL = ("completed", "failed", "cancelled")

#: The slow user hygiene branch: interval 0.1 s, body 1 s (10x its interval, like lanes.py).
SLOW_INTERVAL = 0.1
SLOW_BODY = 1.0
#: The deadline kind's per-attempt limit, and how long an overrunning attempt would take.
DEADLINE_TIMEOUT = 0.5
DEADLINE_OVERRUN = 2.0
#: Cron: every 5 s (leading seconds field).
CRON_EXPRESSION = "*/5 * * * * *"

# Verdict thresholds (documented in benchmarks/README.md).
SLO_UNAFFECTED_RATIO = 2.0
SLO_UNAFFECTED_SLACK_MS = 20.0
RSS_STABLE_MB = 5.0
RSS_STABLE_FRACTION = 0.05
DEAD_TUPLES_FLOOR = 20_000


# ----------------------------------------------------------------------- the workload


class SlowUserBranch(Branch):
    """A user hygiene branch that, once ``active``, holds one connection of its lane's pool
    in ``pg_sleep`` for 10x its interval: the stand-in for a slow application hook. Before
    that it returns at once without touching the database, so the baseline is clean."""

    name = "bench_slow_user_branch"
    lane = HYGIENE
    default_interval = SLOW_INTERVAL
    default_timeout = 30.0

    def __init__(self, body_s: float, **kwargs: float | None) -> None:
        super().__init__(**kwargs)
        self.body_s = body_s
        self.active = False

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        if not self.active:
            return BranchResult({})
        async with ctx.store.db.pool.acquire() as conn:
            await conn.execute("SELECT pg_sleep($1::float8)", self.body_s)
        return BranchResult({"slept": 1})


@dataclass
class Shares:
    scheduled: float = 0.2
    flaky: float = 0.1
    deadline: float = 0.05

    def pick(self, rng: random.Random) -> str:
        x = rng.random()
        for kind, share in (
            ("scheduled", self.scheduled),
            ("flaky", self.flaky),
            ("deadline", self.deadline),
        ):
            if x < share:
                return kind
            x -= share
        return "plain"


@dataclass
class Counters:
    """In-process tallies; the sampler turns their deltas into per-second figures. Nothing
    here grows per job except two compact float arrays (8 bytes a value), so the harness
    itself does not make the RSS figure grow."""

    inserted: Counter[str] = field(default_factory=Counter)
    insert_errors: int = 0
    handled_ok: int = 0
    handler_raised: int = 0
    cron_fires: int = 0
    #: (monotonic time of the fire's handler start, lateness s): few, one per 5 s.
    cron_lateness: list[tuple[float, float]] = field(default_factory=list)
    handler_lateness: array[float] = field(default_factory=lambda: array("d"))


def register_handlers(client: awa.Client, counters: Counters) -> None:
    @client.handler("plain")
    async def plain(ctx: awa.JobContext) -> None:
        await anyio.sleep(ctx.job.args.get("work_s", 0.0))
        counters.handled_ok += 1

    @client.handler("scheduled")
    async def scheduled(ctx: awa.JobContext) -> None:
        counters.handler_lateness.append((datetime.now(UTC) - ctx.job.run_at).total_seconds())
        counters.handled_ok += 1

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        # Fails its first attempt (retried with the default backoff, ~1 s); "doomed" jobs
        # (max_attempts 2) fail every attempt and end ``failed``.
        if ctx.job.attempt == 1 or ctx.job.args.get("doomed"):
            counters.handler_raised += 1
            raise RuntimeError("flaky: failing on purpose")
        counters.handled_ok += 1

    @client.handler("deadline", timeout=DEADLINE_TIMEOUT)
    async def deadline(ctx: awa.JobContext) -> None:
        # "overrun" jobs take longer than their deadline on attempt 1 ("always": on every
        # attempt, so they end ``failed``); the runtime cancels the attempt and retries.
        overrun = ctx.job.args.get("overrun")
        if overrun == "always" or (overrun == "first" and ctx.job.attempt == 1):
            await anyio.sleep(DEADLINE_OVERRUN)
        else:
            await anyio.sleep(0.02)
        counters.handled_ok += 1

    @client.handler("pulse")
    async def pulse(ctx: awa.JobContext) -> None:
        cron = ctx.job.metadata.get("awa.cron") or {}
        at = cron.get("scheduled_at")
        if at:
            due = datetime.fromisoformat(str(at))
            late = (datetime.now(UTC) - due).total_seconds()
            counters.cron_lateness.append((time.monotonic(), late))
        counters.cron_fires += 1
        counters.handled_ok += 1


async def producer(
    client: awa.Client,
    counters: Counters,
    rate: float,
    shares: Shares,
    stop: anyio.Event,
    max_delay: float = 30.0,
) -> None:
    """Insert ``rate`` jobs/s, one ``client.insert`` each, paced against the wall clock so
    a slow insert is caught up rather than lost."""
    rng = random.Random(8)
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            with anyio.move_on_after(delay):
                await stop.wait()
            if stop.is_set():
                break
        kind = shares.pick(rng)
        options: dict[str, Any] = {}
        args: dict[str, Any] = {"n": n}
        if kind == "plain":
            args["work_s"] = round(rng.uniform(0.0, 0.01), 4)
        elif kind == "scheduled":
            options["delay"] = rng.uniform(min(1.0, max_delay), max_delay)
        elif kind == "flaky":
            doomed = rng.random() < 0.2
            args["doomed"] = doomed
            options["max_attempts"] = 2 if doomed else 3
        elif kind == "deadline":
            x = rng.random()
            args["overrun"] = "always" if x < 0.1 else ("first" if x < 0.3 else "no")
            options["max_attempts"] = 2
        try:
            job = await client.insert(kind, args, **options)
        except awa.AwaError as exc:  # counted, never silently lost
            counters.insert_errors += 1
            log.warning("insert failed: %s", exc)
        else:
            counters.inserted[kind] += 1
            del job
        n += 1


async def insert_history_backlog(url: str, rows: int, expires_in: float) -> float:
    """Terminal history (``completed`` rows in the ring's current slot) that passes its
    retention ``expires_in`` seconds from now, so ``cleanup`` starts deleting it then.
    Negative ids and their own kind keep it out of the job accounting."""
    conn = await connect(url)
    try:
        t0 = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority,
                original_priority, attempt, max_attempts, run_at, created_at, attempted_at,
                finalized_at, tags, metadata, errors, run_lease)
            SELECT r.current_slot, -g, 'history_backlog', 'default',
                   jsonb_build_object('i', g, 'pad', repeat('x', 64)), 'completed', 2, 2, 1, 25,
                   t.at, t.at, t.at, t.at, '{}', '{}', '[]', 1
              FROM awa.ring_state r,
                   generate_series(1, $1::int) AS g,
                   LATERAL (SELECT now() - make_interval(secs => $2::float8)
                                  + make_interval(secs => $3::float8) AS at) t
            """,
            rows,
            MaintenanceConfig().retention["completed"],
            expires_in,
        )
        await conn.execute("ANALYZE awa.jobs_done")
        return time.perf_counter() - t0
    finally:
        await conn.close()


# -------------------------------------------------------------------------- sampling

_TABLES_SQL = """
SELECT s.relname::text AS name, s.n_live_tup AS live, s.n_dead_tup AS dead,
       pg_total_relation_size(s.relid) AS bytes, s.autovacuum_count AS autovacuums
  FROM pg_stat_user_tables s
 WHERE s.schemaname = 'awa'
"""

# The workload's live jobs by state: ids above the floor (a range of the primary key, so a
# big backlog below it is never read).
_DEPTH_SQL = "SELECT state::text, count(*) FROM awa.jobs WHERE id > $1::bigint GROUP BY 1"

_LATENESS_SQL = """
SELECT id, finalized_at, extract(epoch FROM attempted_at - run_at)::float8 AS late
  FROM awa.jobs_done
 WHERE state = 'completed' AND finalized_at > $1::timestamptz - interval '5 seconds'
   AND kind = 'scheduled'
"""


class Sampler:
    """Takes one sample a second over a dedicated connection (so it never waits for the
    runtime's pool) and writes it as one NDJSON line."""

    def __init__(
        self,
        url: str,
        runtime: awa.Runtime,
        counters: Counters,
        out: Any,
        server_pid: int | None,
        id_floor: int = 0,
    ) -> None:
        self.url = url
        self.id_floor = id_floor
        self.runtime = runtime
        self.counters = counters
        self.out = out
        self.server_pid = server_pid
        self.count = 0
        # (t, seconds) of every scheduled job, as compact arrays.
        self.lateness_t: array[float] = array("d")
        self.lateness_v: array[float] = array("d")
        self._conn: Any = None
        self._watermark = datetime.now(UTC)
        self._last: dict[str, Any] = {}
        self._seen: set[int] = set()

    async def open(self) -> None:
        self._conn = await connect(self.url)
        self._watermark = await self._conn.fetchval("SELECT now()")
        self._last = {
            "wall": time.monotonic(),
            "handled": 0,
            "applied": 0,
            "inserted": 0,
            "busy": cpu_busy_snapshot(),
            "own_cpu": own_cpu_seconds(),
            "pg_cpu": process_tree_cpu_seconds(self.server_pid),
        }

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def sample(self, t: float, phase: str) -> dict[str, Any]:
        conn = self._conn
        now_wall = time.monotonic()
        dt = max(1e-6, now_wall - self._last["wall"])
        c = self.counters
        buffer = self.runtime.buffer
        applied = buffer.applied if buffer is not None else 0
        inserted = sum(c.inserted.values())

        depth = {str(r[0]): int(r[1]) for r in await conn.fetch(_DEPTH_SQL, self.id_floor)}
        # Re-read a 5 s overlap (a completion can commit after a later one) and skip the
        # ids already seen, forgetting ids once they fall out of the overlap.
        rows = await conn.fetch(_LATENESS_SQL, self._watermark)
        late = [float(r["late"]) for r in rows if int(r["id"]) not in self._seen]
        if rows:
            self._watermark = max(self._watermark, *(r["finalized_at"] for r in rows))
            self._seen = {int(r["id"]) for r in rows}
        self.lateness_t.extend(t for _ in late)
        self.lateness_v.extend(late)
        tables = await conn.fetch(_TABLES_SQL)
        dead = sum(int(r["dead"]) for r in tables)
        size = sum(int(r["bytes"]) for r in tables)
        jobs_row = next((r for r in tables if r["name"] == "jobs"), None)
        done = [r for r in tables if str(r["name"]).startswith("jobs_done_")]
        top_dead = max(tables, key=lambda r: int(r["dead"]), default=None)
        conns = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
        )

        busy_now = cpu_busy_snapshot()
        busy0 = self._last["busy"]
        machine_busy = (
            (busy_now[0] - busy0[0]) / (busy_now[1] - busy0[1])
            if busy_now and busy0 and busy_now[1] > busy0[1]
            else None
        )
        own = own_cpu_seconds()
        pg = process_tree_cpu_seconds(self.server_pid)
        own_cores = (own - self._last["own_cpu"]) / dt
        pg_cores = (
            (pg - self._last["pg_cpu"]) / dt if pg is not None and self._last["pg_cpu"] else None
        )
        cores = os.cpu_count() or 1
        other = (
            max(0.0, machine_busy * cores - own_cores - (pg_cores or 0.0))
            if machine_busy is not None
            else None
        )

        leader = self.runtime.leader
        branches: dict[str, list[Any]] = {}
        if leader is not None and leader.is_leader:
            for name, s in leader.stats.items():
                branches[name] = [
                    s.runs,
                    None if s.last_duration is None else round(s.last_duration, 4),
                    None if s.last_lateness is None else round(s.last_lateness, 4),
                    s.tracker.episodes,
                    int(s.tracker.health.value == "delayed"),
                    s.errors,
                ]
        pct = percentiles(late, (50, 99))
        sample: dict[str, Any] = {
            "t": round(t, 2),
            "phase": phase,
            "completed_per_s": round((c.handled_ok - self._last["handled"]) / dt, 1),
            "written_per_s": round((applied - self._last["applied"]) / dt, 1),
            "inserted_per_s": round((inserted - self._last["inserted"]) / dt, 1),
            "depth": depth,
            "promotion": {
                "n": len(late),
                "p50_ms": round(pct["p50"] * 1000, 2) if pct else None,
                "p99_ms": round(pct["p99"] * 1000, 2) if pct else None,
                "max_ms": round(max(late) * 1000, 2) if late else None,
            },
            "branches": branches,
            "dead_tuples": dead,
            "top_dead": [str(top_dead["name"]), int(top_dead["dead"])] if top_dead else None,
            "awa_bytes": size,
            "jobs_bytes": int(jobs_row["bytes"]) if jobs_row else None,
            "jobs_dead": int(jobs_row["dead"]) if jobs_row else None,
            "jobs_done_bytes": sum(int(r["bytes"]) for r in done),
            "jobs_done_live": sum(int(r["live"]) for r in done),
            "autovacuums": sum(int(r["autovacuums"]) for r in tables),
            "connections": conns,
            "rss_mb": None if (r := rss_mb()) is None else round(r, 1),
            "machine_busy": None if machine_busy is None else round(machine_busy, 3),
            "own_cores": round(own_cores, 3),
            "pg_cores": None if pg_cores is None else round(pg_cores, 3),
            "other_cores": None if other is None else round(other, 3),
        }
        self._last.update(
            wall=now_wall,
            handled=c.handled_ok,
            applied=applied,
            inserted=inserted,
            busy=busy_now,
            own_cpu=own,
            pg_cpu=pg,
        )
        self.count += 1
        self.out.write(json.dumps(sample, separators=(",", ":")) + "\n")
        return sample


class Progress:
    """One status line on stderr, rewritten in place on a terminal, else a line every 30 s."""

    def __init__(self, label: str, total: float) -> None:
        self.label = label
        self.total = total
        self.tty = sys.stderr.isatty()
        self._last_print = 0.0

    def update(self, t: float, sample: dict[str, Any], done: int) -> None:
        frac = min(1.0, t / self.total) if self.total else 1.0
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        p99 = sample["promotion"]["p99_ms"]
        text = (
            f"[{self.label}] {bar} {frac:4.0%} {fmt_duration(t)}/{fmt_duration(self.total)}"
            f" {sample['phase'][:8]:<8} done {done:>7} {sample['completed_per_s']:>5.0f}/s"
            f" late p99 {'-' if p99 is None else f'{p99:.0f}ms':>6}"
            f" dead {sample['dead_tuples']:>7} rss {sample['rss_mb'] or 0:.0f}MB"
        )
        if self.tty:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        elif time.monotonic() - self._last_print >= 30.0:
            print(text, file=sys.stderr, flush=True)
            self._last_print = time.monotonic()

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- one mode


@dataclass
class Options:
    duration: float
    rate: float = 50.0
    shares: Shares = field(default_factory=Shares)
    pressure: bool = True
    pressure_at: float = 1 / 3
    history_backlog: int = 300_000
    drain_timeout: float = 60.0
    max_delay: float = 30.0
    sample_interval: float = 1.0
    progress: bool = True
    tracemalloc: bool = False


async def account(url: str, inserted: Counter[str]) -> dict[str, Any]:
    """Where every inserted job ended, per kind: terminal state, or still live (by state).
    Counted by distinct id over live and finished jobs, so a job present twice (live and
    finished, or twice finished) shows up as ``duplicated`` and a missing one as ``lost``."""
    kinds = sorted(inserted)
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            """
            SELECT kind, place, state::text AS state, count(*) AS n FROM (
                SELECT kind, 'live' AS place, state FROM awa.jobs WHERE kind = ANY ($1::text[])
                UNION ALL
                SELECT kind, 'done', state FROM awa.jobs_done WHERE kind = ANY ($1::text[])) x
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,
            kinds,
        )
        ids = await conn.fetch(
            """
            SELECT kind, count(*) AS n, count(DISTINCT id) AS d FROM (
                SELECT kind, id FROM awa.jobs WHERE kind = ANY ($1::text[])
                UNION ALL
                SELECT kind, id FROM awa.jobs_done WHERE kind = ANY ($1::text[])) x
             GROUP BY 1
            """,
            kinds,
        )
        cron = await conn.fetch(
            """SELECT state::text AS state, count(*) AS n FROM (
                   SELECT state FROM awa.jobs WHERE kind = 'pulse'
                   UNION ALL SELECT state FROM awa.jobs_done WHERE kind = 'pulse') x
                GROUP BY 1"""
        )
        backlog_left = int(
            await conn.fetchval("SELECT count(*) FROM awa.jobs_done WHERE kind = 'history_backlog'")
        )
    finally:
        await conn.close()
    terminal: Counter[str] = Counter()
    live: Counter[str] = Counter()
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        (terminal if r["place"] == "done" else live)[str(r["state"])] += int(r["n"])
        key = f"{r['place']}:{r['state']}"
        by_kind.setdefault(str(r["kind"]), {})[key] = int(r["n"])
    found = sum(int(r["n"]) for r in ids)
    distinct = sum(int(r["d"]) for r in ids)
    per_kind_distinct = {str(r["kind"]): int(r["d"]) for r in ids}
    lost = sum(max(0, n - per_kind_distinct.get(k, 0)) for k, n in inserted.items())
    unexpected = sum(max(0, per_kind_distinct.get(k, 0) - n) for k, n in inserted.items())
    return {
        "inserted": sum(inserted.values()),
        "terminal": dict(terminal),
        "live_at_end": dict(live),
        "found": found,
        "distinct_found": distinct,
        "lost": lost,
        "duplicated": found - distinct,
        "unexpected": unexpected,
        "by_kind": by_kind,
        "cron_jobs": {str(r["state"]): int(r["n"]) for r in cron},
        "history_backlog_left": backlog_left,
    }


async def last_job_id(url: str) -> int:
    """The job id sequence's last value (0 before its first use)."""
    conn = await connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM awa.job_id_seq"
            )
        )
    finally:
        await conn.close()


async def backlog_depth(url: str, id_floor: int) -> dict[str, int]:
    """Live jobs at or below ``id_floor`` (the backlog) by state: one read of the table,
    before and after the run only."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT state::text, count(*) FROM awa.jobs WHERE id <= $1::bigint GROUP BY 1",
            id_floor,
        )
        return {str(r[0]): int(r[1]) for r in rows}
    finally:
        await conn.close()


async def run_mode(
    url: str, mode: str, opts: Options, samples_path: Path, server_pid: int | None = None
) -> dict[str, Any]:
    """Run the workload in lane ``mode`` on the (fresh, migrated) database ``url``."""
    counters = Counters()
    client = awa.Client(url)
    register_handlers(client, counters)
    client.schedule("lh-pulse", CRON_EXPRESSION, "pulse")
    slow = SlowUserBranch(SLOW_BODY)
    pressure_t = opts.duration * opts.pressure_at if opts.pressure else None
    backlog_s = None
    if opts.pressure and opts.history_backlog:
        # The history backlog expires when the pressure phase starts (plus start-up slack).
        backlog_s = await insert_history_backlog(url, opts.history_backlog, (pressure_t or 0) + 5.0)
    # Every job of the run gets an id above this one; the big backlog's are all at or below
    # it, so the per-second depth is the workload's alone, read through the primary key.
    id_floor = await last_job_id(url)
    backlog_live_start = await backlog_depth(url, id_floor) if id_floor else None
    stop = anyio.Event()
    progress = Progress(mode, opts.duration) if opts.progress else None
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    tracer = AllocationTracer() if opts.tracemalloc else None
    t_start = time.monotonic()
    pressure_started_at: float | None = None
    drained_after: float | None = None
    with samples_path.open("w", encoding="utf-8") as out:
        async with client:
            runtime = awa.Runtime(
                client,
                RuntimeConfig(),
                maintenance=MaintenanceConfig(mode=mode),
                branches=[slow],
            )
            async with runtime:
                leader = runtime.leader
                assert leader is not None
                with anyio.fail_after(60):
                    await leader.wait_until_leader()
                sampler = Sampler(url, runtime, counters, out, server_pid, id_floor)
                await sampler.open()
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(
                            producer, client, counters, opts.rate, opts.shares, stop, opts.max_delay
                        )
                        t0 = time.monotonic()
                        k = 0
                        phase = "baseline"
                        while True:
                            k += 1
                            wake = t0 + k * opts.sample_interval
                            await anyio.sleep(max(0.0, wake - time.monotonic()))
                            t = time.monotonic() - t0
                            if pressure_t is not None and phase == "baseline" and t >= pressure_t:
                                phase = "pressure"
                                slow.active = True
                                pressure_started_at = t
                            if tracer is not None and tracer.due(t, opts.duration):
                                tracer.snapshot()
                            if t >= opts.duration and not stop.is_set():
                                stop.set()
                                phase = "drain"
                                slow.active = False
                            sample = await sampler.sample(t, phase)
                            if progress is not None:
                                progress.update(min(t, opts.duration), sample, counters.handled_ok)
                            if phase == "drain":
                                live = sum(sample["depth"].values())
                                if live == 0:
                                    drained_after = t - opts.duration
                                    break
                                if t - opts.duration > opts.drain_timeout:
                                    break
                finally:
                    await sampler.close()
                    if progress is not None:
                        progress.finish()
                stats_end = {
                    name: {
                        "runs": s.runs,
                        "errors": s.errors,
                        "overrun_episodes": s.tracker.episodes,
                        "delayed_at_end": s.tracker.health.value == "delayed",
                        "rows_touched": s.rows_touched,
                        "lane": s.branch.lane,
                    }
                    for name, s in leader.stats.items()
                }
                lanes = sorted(leader.lanes)
                stale = runtime.buffer.stale if runtime.buffer is not None else 0
    wall = time.monotonic() - t_start
    accounting = await account(url, counters.inserted)
    backlog_live_end = await backlog_depth(url, id_floor) if id_floor else None
    return summarize(
        mode,
        opts,
        load_samples(samples_path),
        list(zip(sampler.lateness_t, sampler.lateness_v, strict=True)),
        counters,
        accounting,
        stats_end,
        extra={
            "lanes": lanes,
            "wall_s": round(wall, 1),
            "t0_monotonic": t0,
            "pressure_started_s": pressure_started_at,
            "drained_after_s": None if drained_after is None else round(drained_after, 1),
            "history_backlog_rows": opts.history_backlog if opts.pressure else 0,
            "history_backlog_insert_s": None if backlog_s is None else round(backlog_s, 2),
            "id_floor": id_floor,
            "backlog_live": None
            if backlog_live_start is None
            else {"start": backlog_live_start, "end": backlog_live_end},
            "stale_results": stale,
            "tracemalloc_growth": None if tracer is None else tracer.report(),
            "samples_file": _repo_relative(samples_path),
        },
    )


# -------------------------------------------------------------------------- summaries


def _repo_relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _branch_phase(samples: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per branch over a phase's samples: runs, max sampled duration and lateness, episodes
    gained (sampled once a second: the last run before each sample)."""
    out: dict[str, dict[str, Any]] = {}
    if not samples:
        return out
    first, last = samples[0]["branches"], samples[-1]["branches"]
    for name in last:
        durations = [s["branches"][name][1] for s in samples if name in s["branches"]]
        lateness = [s["branches"][name][2] for s in samples if name in s["branches"]]
        d = [x for x in durations if x is not None]
        lt = [x for x in lateness if x is not None]
        out[name] = {
            "runs": last[name][0] - first.get(name, [0])[0],
            "max_duration_s": max(d) if d else None,
            "max_lateness_s": max(lt) if lt else None,
            "p99_lateness_s": round(percentiles(lt, (99,))["p99"], 4) if lt else None,
            "episodes_gained": last[name][3] - first.get(name, [0, 0, 0, 0])[3],
            "delayed_samples": sum(
                s["branches"][name][4] for s in samples if name in s["branches"]
            ),
        }
    return out


def summarize(
    mode: str,
    opts: Options,
    samples: list[dict[str, Any]],
    lateness: list[tuple[float, float]],
    counters: Counters,
    accounting: dict[str, Any],
    stats_end: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    run = [s for s in samples if s["phase"] != "drain"]
    t0 = extra.pop("t0_monotonic", None)
    phases: dict[str, Any] = {}
    for phase in ("baseline", "pressure"):
        ss = [s for s in run if s["phase"] == phase]
        if not ss:
            continue
        lo, hi = ss[0]["t"] - 1.0, ss[-1]["t"]
        late = [v for t, v in lateness if lo < t <= hi]
        cron = [v for at, v in counters.cron_lateness if t0 is not None and lo < at - t0 <= hi]
        other = [s["other_cores"] for s in ss if s["other_cores"] is not None]
        phases[phase] = {
            "from_s": round(lo + 1.0, 1),
            "to_s": round(hi, 1),
            "completed_per_s_mean": round(sum(s["completed_per_s"] for s in ss) / len(ss), 1),
            "promotion_lateness": ms_summary(late, with_count=True),
            "cron_lateness": ms_summary(cron, with_count=True),
            "branches": _branch_phase(ss),
            "other_cores_mean": round(sum(other) / len(other), 2) if other else None,
        }
    # Steady-state figures over the second half of the run (start-up and the backlog's
    # arrival excluded).
    half = [s for s in run if s["t"] >= opts.duration / 2]
    rss_points = [(s["t"], s["rss_mb"]) for s in half if s["rss_mb"] is not None]
    rss_slope = slope_per_hour(rss_points)
    rss_growth = (
        rss_slope * (rss_points[-1][0] - rss_points[0][0]) / 3600.0
        if rss_slope is not None and rss_points
        else None
    )
    rss_start = rss_points[0][1] if rss_points else None
    rss_stable = (
        rss_growth is not None
        and rss_start is not None
        and rss_growth <= max(RSS_STABLE_MB, RSS_STABLE_FRACTION * rss_start)
    )
    dead = [s["dead_tuples"] for s in run]
    quarter = max(1, len(dead) // 4)
    dead_before = max(dead[:-quarter]) if len(dead) > quarter else max(dead, default=0)
    dead_last = max(dead[-quarter:]) if dead else 0
    dead_bounded = dead_last <= max(DEAD_TUPLES_FLOOR, dead_before)
    dead_slope = slope_per_hour([(s["t"], float(s["dead_tuples"])) for s in half])
    completed = [s["completed_per_s"] for s in run]
    other = [s["other_cores"] for s in run if s["other_cores"] is not None]
    busy = [s["machine_busy"] for s in run if s["machine_busy"] is not None]
    verdicts: dict[str, bool] = {
        "zero_lost": accounting["lost"] == 0
        and accounting["duplicated"] == 0
        and accounting["unexpected"] == 0,
        "dead_tuples_bounded": dead_bounded,
        "rss_stable": rss_stable,
    }
    slo: dict[str, Any] | None = None
    if "baseline" in phases and "pressure" in phases:
        b = phases["baseline"]["promotion_lateness"]["p99_ms"]
        p = phases["pressure"]["promotion_lateness"]["p99_ms"]
        if b is not None and p is not None:
            limit = max(SLO_UNAFFECTED_RATIO * b, b + SLO_UNAFFECTED_SLACK_MS)
            slo = {
                "baseline_p99_ms": b,
                "pressure_p99_ms": p,
                "ratio": round(p / b, 2) if b else None,
                "limit_ms": round(limit, 2),
                "unaffected": p <= limit,
            }
            if mode == "split":
                verdicts["split_slo_lateness_unaffected"] = p <= limit
    return {
        "mode": mode,
        **extra,
        "duration_s": opts.duration,
        "samples": len(samples),
        "inserted_by_kind": dict(counters.inserted),
        "insert_errors": counters.insert_errors,
        "handled_ok": counters.handled_ok,
        "handler_raised": counters.handler_raised,
        "cron_fires": counters.cron_fires,
        "cron_lateness": ms_summary([v for _, v in counters.cron_lateness], with_count=True),
        "accounting": accounting,
        "throughput": {
            "completed_per_s_mean": round(sum(completed) / len(completed), 1)
            if completed
            else None,
            "completed_per_s_min": min(completed) if completed else None,
            "completed_per_s_max": max(completed) if completed else None,
        },
        "promotion_lateness": ms_summary([v for _, v in lateness], with_count=True),
        "handler_lateness": ms_summary(list(counters.handler_lateness), with_count=True),
        "phases": phases,
        "slo_vs_pressure": slo,
        "dead_tuples": {
            "max": max(dead, default=0),
            "final": dead[-1] if dead else None,
            "max_last_quarter": dead_last,
            "max_before_last_quarter": dead_before,
            "slope_per_h_second_half": None if dead_slope is None else round(dead_slope),
        },
        "awa_bytes": {
            "start": run[0]["awa_bytes"] if run else None,
            "max": max((s["awa_bytes"] for s in run), default=None),
            "end": run[-1]["awa_bytes"] if run else None,
        },
        "jobs_table_bytes": {
            "start": run[0]["jobs_bytes"] if run else None,
            "end": run[-1]["jobs_bytes"] if run else None,
            "max": max((s["jobs_bytes"] or 0 for s in run), default=None),
        },
        "connections": {
            "max": max((s["connections"] for s in run), default=None),
            "end": run[-1]["connections"] if run else None,
        },
        "rss_mb": {
            "start": run[0]["rss_mb"] if run else None,
            "second_half_start": rss_start,
            "end": run[-1]["rss_mb"] if run else None,
            "max": max((s["rss_mb"] or 0 for s in run), default=None),
            "slope_mb_per_h_second_half": None if rss_slope is None else round(rss_slope, 2),
            "fitted_growth_mb_second_half": None if rss_growth is None else round(rss_growth, 2),
        },
        "load": {
            "machine_busy_mean": round(sum(busy) / len(busy), 3) if busy else None,
            "other_cores_mean": round(sum(other) / len(other), 2) if other else None,
            "other_cores_p90": round(percentiles(other, (90,))["p90"], 2) if other else None,
        },
        "branches_at_end": stats_end,
        "verdicts": verdicts,
    }


def load_samples(path: Path) -> list[dict[str, Any]]:
    """Samples of a run; ``<path>.gz`` is read when the file was compressed for keeping
    (a relative path is taken from the repository root)."""
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        import gzip

        with gzip.open(path.with_name(path.name + ".gz"), "rt", encoding="utf-8") as gz:
            return [json.loads(line) for line in gz if line.strip()]
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------- driver


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="awa long-horizon lanes study (issue 8)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--duration", type=parse_duration, default="10m", help="per lane mode: 30s, 10m, 2h"
    )
    p.add_argument("--lanes", choices=("split", "single", "both"), default="both")
    p.add_argument("--rate", type=float, default=50.0, help="jobs inserted per second")
    p.add_argument("--scheduled-share", type=float, default=0.2)
    p.add_argument("--flaky-share", type=float, default=0.1, help="jobs that fail and retry")
    p.add_argument("--deadline-share", type=float, default=0.05, help="jobs with timeout=")
    pressure = p.add_mutually_exclusive_group()
    pressure.add_argument(
        "--hygiene-pressure",
        dest="pressure",
        action="store_true",
        default=True,
        help="from --pressure-at of the run on: an expiring history backlog and a slow "
        "user hygiene branch (the default)",
    )
    pressure.add_argument("--no-hygiene-pressure", dest="pressure", action="store_false")
    p.add_argument(
        "--pressure-at", type=float, default=1 / 3, help="fraction of the run before pressure"
    )
    p.add_argument(
        "--history-backlog",
        type=int,
        default=None,
        help="hygiene pressure: expiring terminal-history rows for cleanup (default: 1,000 "
        "per second of run, at most 300,000)",
    )
    big = BacklogSizes()
    p.add_argument(
        "--backlog",
        action="store_true",
        help="run on the big-table backlog of issue 19 (sizes below), copied from a "
        "template database built once on the server",
    )
    p.add_argument("--backlog-history", type=int, default=big.history, help="finished jobs")
    p.add_argument("--backlog-live", type=int, default=big.live, help="live jobs")
    p.add_argument("--backlog-unique-keys", type=int, default=big.unique_keys)
    p.add_argument(
        "--backlog-unhandled",
        type=int,
        default=big.unhandled,
        help="jobs of a kind nobody handles at the head of the workload's queue",
    )
    p.add_argument(
        "--prepare-backlog",
        action="store_true",
        help="only build the backlog's template database (if missing) and exit",
    )
    p.add_argument(
        "--label",
        default=None,
        help="added to the output file names (default: 'backlog' with --backlog), so "
        "concurrent runs do not overwrite each other's files",
    )
    p.add_argument(
        "--max-delay",
        type=float,
        default=None,
        help="scheduled jobs: delay 1..this many s (default: a quarter of the run, at most 30)",
    )
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument(
        "--data-dir",
        default=os.path.join(".awa", "bench-pgdata-long"),
        help="embedded PostgreSQL data directory (ignored with AWA_DATABASE_URL)",
    )
    p.add_argument("--fast", action="store_true", help="fsync/synchronous_commit off")
    p.add_argument(
        "--tracemalloc",
        action="store_true",
        help="diagnose RSS growth: Python allocations that grew over the second half, by "
        "source line (slows the process; do not use for lateness figures)",
    )
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--replot",
        type=Path,
        metavar="SUMMARY_JSON",
        help="only redraw the plots of an earlier run from its summary and NDJSON files",
    )
    p.add_argument("--no-save", action="store_true", help="write nothing (smoke runs)")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.max_delay is None:
        args.max_delay = min(30.0, max(2.0, args.duration / 4))
    if args.history_backlog is None:
        args.history_backlog = int(min(300_000, 1000 * args.duration))
    if args.label is None:
        args.label = "backlog" if args.backlog else ""
    return args


def backlog_sizes(args: argparse.Namespace) -> BacklogSizes:
    """The backlog of ``--backlog``: its unhandled jobs sit in the queue the workload uses
    (``default``), so every claim of the run has them at its queue's head; no extra
    claimable stock (the workload brings its own jobs)."""
    return BacklogSizes(
        history=args.backlog_history,
        live=args.backlog_live,
        unique_keys=args.backlog_unique_keys,
        unhandled=args.backlog_unhandled,
        stock=0,
        shared_queue="default",
    )


def file_stem(label: str) -> str:
    return f"long-horizon-{label}" if label else "long-horizon"


async def prepare_backlog(args: argparse.Namespace, server: BenchServer) -> None:
    sizes = backlog_sizes(args)
    name, build_s = await template_database(server.url, sizes)
    took = "already built" if build_s is None else f"built in {build_s:.0f} s"
    print(f"backlog template {name}: {took}")


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    info = await machine_info(server, durability)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    modes = MODES if args.lanes == "both" else (args.lanes,)
    opts = Options(
        duration=args.duration,
        rate=args.rate,
        shares=Shares(args.scheduled_share, args.flaky_share, args.deadline_share),
        pressure=args.pressure,
        pressure_at=args.pressure_at,
        history_backlog=args.history_backlog,
        drain_timeout=args.drain_timeout,
        max_delay=args.max_delay,
        tracemalloc=args.tracemalloc,
    )
    out_dir = args.output_dir if not args.no_save else Path(os.environ.get("TMPDIR", "/tmp"))
    summaries: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    stem = file_stem(args.label)
    backlog: dict[str, Any] | None = None
    if args.backlog:
        sizes = backlog_sizes(args)
        template, build_s = await template_database(server.url, sizes)
        backlog = {
            **sizes.as_dict(),
            "template": template,
            "build_s": None if build_s is None else round(build_s, 1),
        }
    for mode in modes:
        paths[mode] = out_dir / f"{stem}-{stamp}-{mode}.ndjson"
        if backlog is not None:
            async with cloned_database(server.url, backlog["template"], f"long_{mode}") as (
                db,
                clone_s,
            ):
                summaries[mode] = await run_mode(db, mode, opts, paths[mode], server.server_pid)
            summaries[mode]["backlog_clone_s"] = round(clone_s, 1)
        else:
            async with fresh_database(server.url, f"long_{mode}") as db:
                summaries[mode] = await run_mode(db, mode, opts, paths[mode], server.server_pid)
    plots: list[Path] = []
    if not args.no_plots and not args.no_save:
        # Loaded only now, so one mode's samples never sit in memory during the next run.
        samples = {mode: load_samples(path) for mode, path in paths.items()}
        plots = render_plots(summaries, samples, f"{stem}-{stamp}", args.output_dir / "plots")
    if args.no_save:
        for mode, path in paths.items():
            with contextlib.suppress(OSError):
                path.unlink()
            summaries[mode]["samples_file"] = None
    verdicts = {
        f"{mode}: {name}": ok for mode, s in summaries.items() for name, ok in s["verdicts"].items()
    }
    comparison = None
    if "split" in summaries and "single" in summaries:
        sp, si = summaries["split"], summaries["single"]
        comparison = {
            "pressure_p99_ms": {
                "split": (sp.get("slo_vs_pressure") or {}).get("pressure_p99_ms"),
                "single": (si.get("slo_vs_pressure") or {}).get("pressure_p99_ms"),
            },
            "pressure_max_ms": {
                m: s["phases"].get("pressure", {}).get("promotion_lateness", {}).get("max_ms")
                for m, s in summaries.items()
            },
        }
    return {
        "benchmark": "long_horizon",
        "stamp": stamp,
        "label": args.label,
        "machine": info,
        "parameters": {
            "duration_s": args.duration,
            "lanes": list(modes),
            "rate": args.rate,
            "shares": {
                "scheduled": args.scheduled_share,
                "flaky": args.flaky_share,
                "deadline": args.deadline_share,
            },
            "hygiene_pressure": args.pressure,
            "pressure_at": args.pressure_at,
            "history_backlog_rows": args.history_backlog,
            "backlog": backlog,
            "slow_branch": {"interval_s": SLOW_INTERVAL, "body_s": SLOW_BODY},
            "deadline_timeout_s": DEADLINE_TIMEOUT,
            "cron": CRON_EXPRESSION,
        },
        "modes": summaries,
        "split_vs_single": comparison,
        "verdicts": verdicts,
        "plots": [_repo_relative(p) for p in plots],
    }


def _f(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        f"awa long-horizon study {m['date']}  ({fmt_duration(payload['parameters']['duration_s'])}"
        f" per mode, {payload['parameters']['rate']:g} jobs/s)",
        f"  {describe_machine(m)}, load at start {m['load_average_at_start']}",
    ]
    bl = payload["parameters"].get("backlog")
    if bl:
        built = "reused" if bl["build_s"] is None else f"built in {bl['build_s']:.0f} s"
        lines.append(
            f"  backlog: history {bl['history']:,}, live {bl['live']:,}, unique keys"
            f" {bl['unique_keys']:,}, unhandled {bl['unhandled']:,} at the head of queue"
            f" {bl['shared_queue']!r} (template {bl['template']}, {built})"
        )
    for mode, s in payload["modes"].items():
        a = s["accounting"]
        lines += [
            "",
            f"[{mode}] lanes {s['lanes']}, {s['samples']} samples,"
            f" wall {fmt_duration(s['wall_s'])},"
            f" drained {_f(s['drained_after_s'])} s after the producer stopped",
            f"  jobs: inserted {a['inserted']}, terminal {a['terminal']}, live at end"
            f" {a['live_at_end']}, lost {a['lost']}, duplicated {a['duplicated']};"
            f" cron fires {s['cron_fires']}",
            f"  completed/s mean {_f(s['throughput']['completed_per_s_mean'])}"
            f" (min {_f(s['throughput']['completed_per_s_min'])},"
            f" max {_f(s['throughput']['completed_per_s_max'])})",
        ]
        if s.get("backlog_live"):
            lines.append(
                f"  backlog live jobs {s['backlog_live']['start']} -> {s['backlog_live']['end']}"
                f" (copied in {_f(s.get('backlog_clone_s'))} s)"
            )
        for phase, ph in s["phases"].items():
            pl = ph["promotion_lateness"]
            br = ph["branches"]
            promo = br.get("promote_scheduled", {})
            slow = br.get(SlowUserBranch.name, {})
            cleanup = br.get("cleanup", {})
            lines.append(
                f"  {phase:<8} {ph['from_s']:>6.0f}-{ph['to_s']:<6.0f}s promotion lateness"
                f" p50 {_f(pl['p50_ms'])} p99 {_f(pl['p99_ms'])} max {_f(pl['max_ms'])} ms"
                f" (n={pl['n']}); cron p99 {_f(ph['cron_lateness']['p99_ms'])} ms;"
                f" promote_scheduled max lateness"
                f" {_f(_scale(promo.get('max_lateness_s')), '.0f')} ms;"
                f" episodes slow {slow.get('episodes_gained', 0)},"
                f" cleanup runs {cleanup.get('runs', 0)};"
                f" other cores {_f(ph['other_cores_mean'], '.2f')}"
            )
        d, r = s["dead_tuples"], s["rss_mb"]
        lines += [
            f"  dead tuples max {d['max']}, final {d['final']} (last quarter max"
            f" {d['max_last_quarter']} vs before {d['max_before_last_quarter']});"
            f" awa schema {_mb(s['awa_bytes']['start'])} -> {_mb(s['awa_bytes']['end'])} MB;"
            f" connections max {s['connections']['max']}",
            f"  RSS {_f(r['start'])} -> {_f(r['end'])} MB, second-half slope"
            f" {_f(r['slope_mb_per_h_second_half'], '.2f')} MB/h"
            f" (fitted growth {_f(r['fitted_growth_mb_second_half'], '.2f')} MB);"
            f" neighbours {_f(s['load']['other_cores_mean'], '.2f')} cores mean",
        ]
        for g in (s.get("tracemalloc_growth") or [])[:8]:
            lines.append(
                f"  tracemalloc +{g['size_diff_kb']:.0f} KB ({g['count_diff']:+d} blocks):"
                f" {' <- '.join(reversed(g['traceback'][-3:]))}"
            )
    lines += ["", "verdicts:"]
    lines += [f"  {'ok    ' if ok else 'MISSED'} {k}" for k, ok in payload["verdicts"].items()]
    if payload["plots"]:
        lines += ["", "plots: " + ", ".join(payload["plots"])]
    return "\n".join(lines)


def _scale(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.replot is not None:
        payload = json.loads(args.replot.read_text(encoding="utf-8"))
        summaries = payload["modes"]
        samples = {m: load_samples(Path(s["samples_file"])) for m, s in summaries.items()}
        stem = f"{file_stem(payload.get('label') or '')}-{payload['stamp']}"
        for path in render_plots(summaries, samples, stem, args.output_dir / "plots"):
            print(f"wrote {path}")
        return 0
    server = BenchServer(args.data_dir, durable=not args.fast)
    server.start()
    try:
        if args.prepare_backlog:
            asyncio.run(prepare_backlog(args, server))
            return 0
        payload = asyncio.run(run(args, server))
    finally:
        server.stop()
    print(render(payload))
    if not args.no_save:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(payload, indent=2) + "\n"
        base = file_stem(args.label)
        paths = [
            args.output_dir / f"{base}-{payload['stamp']}.json",
            args.output_dir / f"{base}-latest.json",
        ]
        for path in paths:
            path.write_text(text, encoding="utf-8")
        stem = f"{base}-{payload['stamp']}"
        paths += publish_latest([REPO_ROOT / p for p in payload["plots"]], stem, f"{base}-latest")
        print(f"\nwrote {', '.join(str(p) for p in paths)}")
    lost = any(
        s["accounting"]["lost"] or s["accounting"]["duplicated"] for s in payload["modes"].values()
    )
    if lost:
        print("FAILED: jobs lost or duplicated", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
