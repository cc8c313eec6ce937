"""Shared pieces of the chaos suite (``tests/chaos/``) and of its worker process
(``tests/support/chaos_worker.py``).

Why a side table: the guarantee under test is "every job completes, and no handler starts
after the job's completion was committed". The database alone cannot tell how often a
handler ran, so the chaos handler records each invocation in ``chaos_executions`` in a
transaction of its own, on a pool of its own (application name ``awa-chaos-probe``, so the
chaos never terminates the probe's connections by mistake). The same statement reads whether
the job already sits in ``awa.jobs_done`` as completed: a row with ``after_completion`` true is
an invocation that started after its job's completion was committed (it cannot be a race with
this invocation's own completion, which needs the row written first).

Every scenario has a short form for CI and a long form behind ``AWA_CHAOS_LONG=1``; each
prints one line of figures (jobs inserted, completed, lost, duplicated after completion, time
to recover) through pytest's terminal reporter, so they show up without ``-s``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast, overload

import anyio
import anyio.abc
import asyncpg

import awa
from awa.config import MaintenanceConfig
from awa.store.leadership import LEADER_LOCK_KEY
from awa.store.presence import PRESENCE_LOCK_CLASS

if TYPE_CHECKING:  # the worker process imports this module too: keep pytest out of it
    import pytest

T = TypeVar("T")

#: ``AWA_CHAOS_LONG=1`` runs every scenario longer and harder (see README, "Chaos tests").
LONG = os.environ.get("AWA_CHAOS_LONG", "") not in ("", "0")

PROBE_APPLICATION = "awa-chaos-probe"
CRON_NAME = "chaos-every-second"
KIND = "chaos"
QUEUE = "chaos"
#: ``tests/``: the worker runs as ``python -m support.chaos_worker`` with this on its path.
TESTS_DIR = Path(__file__).resolve().parents[1]


def worker_environment() -> dict[str, str]:
    """This process's environment with ``tests/`` first on ``PYTHONPATH`` (for ``support``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    return env


EXECUTIONS_DDL = """
CREATE TABLE IF NOT EXISTS public.chaos_executions (
    seq              bigserial PRIMARY KEY,
    job_id           bigint NOT NULL,
    run_lease        bigint NOT NULL,
    attempt          integer NOT NULL,
    pid              integer NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    after_completion boolean NOT NULL
)
"""

_RECORD = """
INSERT INTO public.chaos_executions (job_id, run_lease, attempt, pid, after_completion)
SELECT $1, $2, $3, $4,
       EXISTS (SELECT 1 FROM awa.jobs_done WHERE id = $1 AND state = 'completed')
"""

#: What a probe write may meet while the chaos runs: the server or the connection is gone.
PROBE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    TimeoutError,
)


def scale(short: T, long: T) -> T:
    """The CI value, or the long-form value under ``AWA_CHAOS_LONG=1``."""
    return long if LONG else short


def fast_maintenance(**overrides: Any) -> MaintenanceConfig:
    """Maintenance tuned so elections and rescues happen within a second or two."""
    options: dict[str, Any] = {
        "startup_jitter": 0,
        "election_interval": 0.2,
        "leader_check_interval": 0.2,
        "health_interval": 0.5,
    }
    options.update(overrides)
    return MaintenanceConfig(**options)


def runtime_config(queues: dict[str, int], **overrides: Any) -> awa.RuntimeConfig:
    options: dict[str, Any] = {
        "queues": queues,
        "heartbeat_interval": 0.5,
        "liveness_interval": 1.0,
        "shutdown_grace": 5.0,
    }
    options.update(overrides)
    return awa.RuntimeConfig(**options)


# ----------------------------------------------------------------------------- probe


class Probe:
    """The handler's own connection pool for the ``chaos_executions`` side table."""

    def __init__(self, url: str, *, size: int = 4, give_up_after: float = 120.0) -> None:
        self.url = url
        self.size = size
        self.give_up_after = give_up_after
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Self:
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.size,
            server_settings={"application_name": PROBE_APPLICATION},
        )
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    async def record(self, job: awa.Job) -> None:
        """Record one invocation, retrying while PostgreSQL is away (a restart scenario
        keeps handlers waiting here rather than failing their attempt)."""
        assert self._pool is not None
        deadline = time.monotonic() + self.give_up_after
        while True:
            try:
                with anyio.fail_after(5):
                    await self._pool.execute(
                        _RECORD, job.id, job.run_lease, job.attempt, os.getpid()
                    )
                return
            except PROBE_ERRORS:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.1)


def register_chaos_handler(client: awa.Client, probe: Probe | None) -> None:
    """``chaos`` jobs: record the invocation (unless ``probe`` is None), sleep
    ``args["sleep"]`` seconds, return.

    ``args["hang_first"]``: the first attempt sleeps forever (a job to orphan by killing its
    worker); later attempts finish at once."""

    @client.handler(KIND, queue=QUEUE)
    async def chaos(ctx: awa.JobContext) -> dict[str, int]:
        if probe is not None:
            await probe.record(ctx.job)
        if ctx.args.get("hang_first") and ctx.job.attempt == 1:
            await anyio.sleep_forever()
        await anyio.sleep(float(ctx.args.get("sleep", 0)))
        return {"pid": os.getpid()}


async def create_side_table(conn: asyncpg.Connection) -> None:
    await conn.execute(EXECUTIONS_DDL)


# ----------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class Audit:
    """Every ``chaos`` job's fate, from ``awa.jobs``, ``awa.jobs_done`` and the side table."""

    jobs: int  # rows of kind chaos, live or finished
    completed: int
    live: int  # still in awa.jobs (not finished)
    failed: int  # failed or cancelled
    history_duplicates: int  # ids with more than one awa.jobs_done row
    executions: int
    reexecuted: int  # jobs whose handler ran more than once
    after_completion: int  # invocations that started after the completion was committed
    lease_violations: int  # invocations under a lease generation above the completed one

    @property
    def lost(self) -> int:
        return self.jobs - self.completed


async def audit(conn: asyncpg.Connection, ids: set[int] | None = None) -> Audit:
    row = await conn.fetchrow(
        """
        WITH live AS (SELECT id FROM awa.jobs WHERE kind = $1),
        done AS (SELECT id, state, run_lease FROM awa.jobs_done WHERE kind = $1),
        -- leases are ordered by their generation (high 32 bits) only: the low half is
        -- random (ADR 040)
        ex AS (SELECT job_id, count(*) AS n, max(run_lease >> 32) AS top,
                      count(*) FILTER (WHERE after_completion) AS late
                 FROM public.chaos_executions GROUP BY job_id)
        SELECT
          (SELECT count(*) FROM live) AS live,
          (SELECT count(DISTINCT id) FROM done) AS done_ids,
          (SELECT count(DISTINCT id) FROM done WHERE state = 'completed') AS completed,
          (SELECT count(DISTINCT id) FROM done WHERE state <> 'completed') AS failed,
          (SELECT count(*) FROM (SELECT id FROM done GROUP BY id HAVING count(*) > 1) d)
              AS history_duplicates,
          (SELECT coalesce(sum(n), 0) FROM ex) AS executions,
          (SELECT count(*) FROM ex WHERE n > 1) AS reexecuted,
          (SELECT coalesce(sum(late), 0) FROM ex) AS after_completion,
          (SELECT count(*) FROM ex JOIN done d ON d.id = ex.job_id AND d.state = 'completed'
            WHERE ex.top > d.run_lease >> 32) AS lease_violations
        """,
        KIND,
    )
    assert row is not None
    if ids is not None:
        known = await conn.fetchval(
            "SELECT count(*) FROM awa.all_jobs WHERE id = ANY($1::bigint[])", list(ids)
        )
        assert known == len(ids), f"{len(ids) - known} acknowledged inserts have no row at all"
    return Audit(
        jobs=int(row["live"]) + int(row["done_ids"]),
        completed=int(row["completed"]),
        live=int(row["live"]),
        failed=int(row["failed"]),
        history_duplicates=int(row["history_duplicates"]),
        executions=int(row["executions"]),
        reexecuted=int(row["reexecuted"]),
        after_completion=int(row["after_completion"]),
        lease_violations=int(row["lease_violations"]),
    )


def assert_nothing_lost_or_redone(result: Audit, inserted: int) -> None:
    assert result.jobs == inserted, result
    assert result.lost == 0, result
    assert result.failed == 0, result
    assert result.history_duplicates == 0, result
    assert result.after_completion == 0, result
    assert result.lease_violations == 0, result
    assert result.executions >= result.completed, result


async def cron_fires(conn: asyncpg.Connection) -> tuple[int, int]:
    """(jobs fired by the chaos cron schedule, instants that were enqueued more than once)."""
    row = await conn.fetchrow(
        """
        SELECT coalesce(sum(n), 0) AS fires, count(*) FILTER (WHERE n > 1) AS doubled
          FROM (SELECT count(*) AS n FROM awa.all_jobs
                 WHERE metadata -> 'awa.cron' ->> 'schedule' = $1
                 GROUP BY metadata -> 'awa.cron' ->> 'scheduled_at') AS per_instant
        """,
        CRON_NAME,
    )
    assert row is not None
    return int(row["fires"]), int(row["doubled"])


async def chaos_done(conn: asyncpg.Connection) -> int:
    """How many chaos jobs are still live (0 = everything finished)."""
    return int(await conn.fetchval("SELECT count(*) FROM awa.jobs WHERE kind = $1", KIND))


# --------------------------------------------------------------------------- figures


def emit(
    request: pytest.FixtureRequest, scenario: str, *, suite: str = "chaos", **figures: object
) -> None:
    """One line of figures (``<suite> <scenario>: k=v ...``), written past pytest's output
    capture."""
    shown = " ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    line = f"{suite} {scenario}{' [long]' if LONG else ''}: {shown}"
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - pytest without a terminal
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T | None]],
    timeout: float = 15.0,
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 15.0,
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> T: ...


async def wait_for(
    predicate: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float = 15.0,
    *,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until truthy; fail naming ``what`` after ``timeout`` seconds.

    The predicate may be sync or async (a lambda around a query is the common case), hence
    the two overloads. The value returned is the predicate's first truthy answer, so a
    predicate typed ``X | None`` (``fetchrow``, ``fetchval``) yields a plain ``X``.
    """
    try:
        with anyio.fail_after(timeout):
            while True:
                value = await _answer(predicate)
                if value:
                    return value
                await anyio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from None


async def _answer(
    predicate: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
) -> T | None:
    """One answer of a sync or async predicate, awaited when it is awaitable."""
    value = predicate()
    if isinstance(value, Awaitable):
        return cast("T | None", await value)
    return value


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------- backend classification

#: Which awa backend plays which part, from pg_locks (leader and presence locks) and the last
#: statement (LISTEN). ``pool``: everything else (the client pools, the maintenance lanes'
#: pools, a follower's election connection).
BACKENDS = """
SELECT a.pid,
       CASE
         WHEN EXISTS (SELECT 1 FROM pg_locks l
                       WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
                         AND l.objsubid = 1
                         AND ((l.classid::bigint << 32) | l.objid::bigint) = $1) THEN 'leader'
         WHEN EXISTS (SELECT 1 FROM pg_locks l
                       WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
                         AND l.objsubid = 2 AND l.classid::bigint = $2) THEN 'presence'
         WHEN a.query LIKE 'LISTEN%' OR a.query LIKE '%awa: LISTEN connection check%'
           THEN 'listen'
         ELSE 'pool'
       END AS part
  FROM pg_stat_activity a
 WHERE a.datname = current_database() AND a.application_name = 'awa'
   AND a.pid <> pg_backend_pid()
"""


async def awa_backends(conn: asyncpg.Connection) -> dict[str, list[int]]:
    parts: dict[str, list[int]] = {}
    for row in await conn.fetch(BACKENDS, LEADER_LOCK_KEY, PRESENCE_LOCK_CLASS):
        parts.setdefault(row["part"], []).append(int(row["pid"]))
    return parts


async def leader_lock_holders(conn: asyncpg.Connection) -> list[int]:
    return (await awa_backends(conn)).get("leader", [])


# --------------------------------------------------------------------- worker processes


class WorkerProcess:
    """One ``tests/support/chaos_worker.py`` process (a real awa runtime in its own interpreter)."""

    def __init__(self, proc: anyio.abc.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.instance_id: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        with anyio.fail_after(10):
            await self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class WorkerFleet:
    """Start, kill and finally reap chaos worker processes."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Self:
        self._conn = await asyncpg.connect(self.url)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            for worker in self.workers:
                if worker.alive:
                    worker.proc.kill()
                    with anyio.move_on_after(10):
                        await worker.proc.wait()
                await worker.proc.aclose()
            if self._conn is not None:
                await self._conn.close()

    async def spawn(
        self, *, queues: dict[str, int], maintenance: bool = True, ready_timeout: float = 30.0
    ) -> WorkerProcess:
        """Start a worker and wait until its runtime row is registered."""
        log = self.log_dir / f"worker-{len(self.workers)}.log"
        argv = [sys.executable, "-m", "support.chaos_worker", self.url]
        for name, limit in queues.items():
            argv += ["--queue", f"{name}={limit}"]
        if not maintenance:
            argv.append("--no-maintenance")
        with log.open("wb") as sink:
            proc = await anyio.open_process(
                argv, stdout=subprocess.DEVNULL, stderr=sink, env=worker_environment()
            )
        worker = WorkerProcess(proc, log)
        self.workers.append(worker)
        assert self._conn is not None
        conn = self._conn

        async def registered() -> str | None:
            if not worker.alive:
                raise AssertionError(f"worker exited early:\n{worker.log_tail()}")
            value = await conn.fetchval(
                "SELECT instance_id FROM awa.runtimes WHERE pid = $1 AND stopped_at IS NULL"
                " ORDER BY started_at DESC LIMIT 1",
                worker.pid,
            )
            return None if value is None else str(value)

        worker.instance_id = await wait_for(
            registered, ready_timeout, interval=0.05, what="a worker to register"
        )
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive]


# ------------------------------------------------------------------ in-process runtimes


class Crew:
    """Runtimes in this process, each with its own client (own pool) and the chaos handler.

    ``crashed()`` looks at the runtime's host task: ``Runtime.state`` keeps saying
    ``running`` after the host task died (see the chaos report), so it cannot tell."""

    def __init__(
        self,
        url: str,
        count: int,
        *,
        queues: dict[str, int] | None = None,
        maintenance: MaintenanceConfig | None = None,
        pool_size: int = 10,
        record: bool = True,
        cron: bool = False,
        **config: Any,
    ) -> None:
        self.url = url
        self.count = count
        self.queues = queues if queues is not None else {QUEUE: 8}
        self.maintenance = maintenance or fast_maintenance()
        self.pool_size = pool_size
        self.record = record
        self.cron = cron
        self.config = config
        self.clients: list[awa.Client] = []
        self.runtimes: list[awa.Runtime] = []
        self._probe: Probe | None = None
        self.close_errors: list[Exception] = []

    async def __aenter__(self) -> Self:
        self._probe = await Probe(self.url, size=8).__aenter__()
        try:
            for _ in range(self.count):
                client = awa.Client(self.url, pool_size=self.pool_size)
                register_chaos_handler(client, self._probe if self.record else None)
                if self.cron:
                    client.schedule(CRON_NAME, "* * * * * *", KIND, queue=QUEUE, args={"sleep": 0})
                await client.connect()
                self.clients.append(client)
                runtime = awa.Runtime(
                    client,
                    runtime_config(self.queues, **self.config),
                    maintenance=self.maintenance,
                )
                await runtime.start()
                self.runtimes.append(runtime)
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        with anyio.CancelScope(shield=True):
            for runtime in self.runtimes:
                with anyio.move_on_after(15):
                    try:
                        await runtime.abort()
                    except Exception as exc:  # a crashed host re-raises; crashed() reports it
                        self.close_errors.append(exc)
            for client in self.clients:
                with anyio.move_on_after(15):
                    await client.close()
            if self._probe is not None:
                await self._probe.__aexit__(None, None, None)

    def crashed(self) -> list[str]:
        """Runtimes whose host task ended on its own (an exception escaped the runtime)."""
        dead = []
        for runtime in self.runtimes:
            host = runtime._host
            if host is not None and host.done():
                error = None if host.cancelled() else host.exception()
                dead.append(f"{runtime.instance_id}: {_describe(error)}")
        return dead

    def leaders(self) -> list[awa.Runtime]:
        return [r for r in self.runtimes if r.leader is not None and r.leader.is_leader]

    def terms(self) -> int:
        return sum(r.leader.terms for r in self.runtimes if r.leader is not None)


# --------------------------------------------------------------------------- producer


@dataclass
class ProducerTally:
    """What a producer saw: acknowledged job ids, typed outage errors, hangs, anything else."""

    acked: set[int] = field(default_factory=set)
    unavailable: int = 0
    hangs: int = 0
    untyped: list[str] = field(default_factory=list)
    slowest_error_s: float = 0.0  # longest an insert took to raise DatabaseUnavailable
    acked_at: list[float] = field(default_factory=list)  # monotonic time of each success


async def produce(
    client: awa.Client,
    tally: ProducerTally,
    stop: anyio.Event,
    *,
    pause: float,
    timeout: float,
    rng: random.Random,
    sleep: tuple[float, float] = (0.0, 0.05),
) -> None:
    """Insert one chaos job every ``pause`` seconds until ``stop``; each insert is bounded by
    ``timeout``: running out of it is a hang, anything but ``DatabaseUnavailable`` is an
    untyped error (both are bugs the scenario asserts away)."""
    seq = 0
    while not stop.is_set():
        seq += 1
        began = time.monotonic()
        try:
            with anyio.fail_after(timeout):
                job = await client.insert(
                    KIND, {"seq": seq, "sleep": rng.uniform(*sleep)}, queue=QUEUE
                )
            tally.acked.add(job.id)
            tally.acked_at.append(time.monotonic())
        except awa.DatabaseUnavailable:
            tally.unavailable += 1
            tally.slowest_error_s = max(tally.slowest_error_s, time.monotonic() - began)
        except TimeoutError:
            tally.hangs += 1
        except Exception as exc:  # the scenario asserts there are none
            tally.untyped.append(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        await anyio.sleep(pause)


def _describe(error: BaseException | None) -> str:
    """The leaf exceptions of a (nested) group, with the frame each was raised in."""
    if error is None:
        return "cancelled"
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in error.exceptions)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/awa/" in f.filename]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[::-1])
    return f"{type(error).__name__}: {error} [at {where}]"


# ----------------------------------------------------------------------- known bugs

#: Signatures of bugs the chaos suite found and reproduces in ``tests/chaos/test_focused.py``
#: (where each is a strict xfail). A scenario that dies of one of them *only* is reported as
#: xfailed with the reason; anything else still fails it. Remove an entry with its fix.
KNOWN_BUGS: dict[str, str] = {}


def verdict(crew: Crew, untyped: list[str] | tuple[str, ...] = ()) -> None:
    """Fail on a crashed runtime or an untyped producer error, unless every one of them is a
    known bug: then xfail naming it (call outside task groups: pytest's outcome exceptions
    must not be wrapped in an exception group)."""
    problems = [*crew.crashed(), *untyped]
    if not problems:
        return
    if all(any(sig in p for sig in KNOWN_BUGS) for p in problems):
        import pytest

        reasons = sorted({r for sig, r in KNOWN_BUGS.items() if any(sig in p for p in problems)})
        pytest.xfail("; ".join(reasons))
    raise AssertionError(f"runtime crashed or untyped errors: {problems}")


@overload
async def settle(
    crew: Crew, predicate: Callable[[], Awaitable[T | None]], timeout: float, *, what: str
) -> T: ...


@overload
async def settle(
    crew: Crew, predicate: Callable[[], T | None], timeout: float, *, what: str
) -> T: ...


async def settle(
    crew: Crew,
    predicate: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float,
    *,
    what: str,
) -> T:
    """``wait_for`` that gives up at once when a runtime of ``crew`` dies, and judges it."""
    found: list[T] = []

    async def done() -> bool:
        if crew.crashed():
            return True
        value = await _answer(predicate)
        if value:
            found.append(value)
        return bool(value)

    await wait_for(done, timeout, what=what)
    verdict(crew)
    return found[-1]
