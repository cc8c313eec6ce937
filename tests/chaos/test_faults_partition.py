"""Partitions and half-open connections under a live runtime (issue 14, ADR 014), through
``FaultProxy`` in front of the real PostgreSQL.

What is promised, and shown here:

- A runtime whose *presence* connection is severed on the server side (the client never
  told) or blackholed both ways, again and again for a sustained window, while it runs jobs
  and another runtime leads maintenance: the leader rescues nothing, no job is executed
  twice (let alone concurrently), none fails, all complete; the runtime noticed (presence
  losses, claims paused) and claims resumed.
- A runtime whose *every* connection is partitioned while it runs jobs: another worker
  completes them exactly once in the database, the partitioned runtime stops its own
  handlers (self-fencing) before the leader rescues their jobs, so no two executions of
  one job overlap in time.
- A runtime partitioned only briefly (fenced, but healed before the leader could rescue):
  the jobs it fenced run again as soon as the network heals, not at the heartbeat backstop.
- The LISTEN connection half-open, or killed: jobs inserted from the moment of the fault
  are picked up within the fallback poll interval + 50 ms (p99), and none is lost.

Executions are recorded in-process (every runtime of a test lives in this process, so one
monotonic clock orders them): job, lease, runtime, start, end (return or cancellation).
Each test prints one line of figures through the terminal reporter (``chaos_support.emit``).
Short forms for CI; ``AWA_CHAOS_LONG=1`` runs the sustained faults for 30 s and streams
longer. kill -9 rescue time is measured by ``tests/chaos/test_kill.py`` (``recover_s_*``).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.store.presence import PRESENCE_LOCK_CLASS
from support.chaos import emit as chaos_emit
from support.chaos import wait_for
from support.fault_proxy import FaultProxy

T = TypeVar("T")

#: ``AWA_CHAOS_LONG=1``: the long form, as in the chaos suite.
LONG = os.environ.get("AWA_CHAOS_LONG", "") not in ("", "0")


def scale(short: T, long: T) -> T:
    return long if LONG else short


KIND = "partition"
QUEUE = "partition"

#: How long the presence connection stays faulted (the issue's 30 s in the long form).
FAULT_WINDOW = scale(15.0, 30.0)
#: How long jobs are streamed from the moment a LISTEN fault is injected.
STREAM = scale(3.0, 10.0)
STREAM_PAUSE = 0.02
#: A partition long enough for self-fencing, shorter than the presence idle limit (10 s).
SHORT_PARTITION = 4.0
#: After a short partition heals, the jobs its runtime fenced must have run again within
#: this (the heartbeat backstop would take heartbeat_staleness, 30 s).
HANDBACK_BOUND = 5.0


# --------------------------------------------------------------------------- ledger


@dataclass
class Execution:
    job_id: int
    run_lease: int
    attempt: int
    runtime: str
    started: float
    ended: float | None = None
    outcome: str = "running"  # returned | stopped (cancelled) | raised


@dataclass
class Ledger:
    """Every handler invocation of every runtime in this test, on one monotonic clock."""

    executions: list[Execution] = field(default_factory=list)

    def register(self, client: awa.Client, runtime: str) -> None:
        """``partition`` jobs: sleep ``args["sleep"]`` (``args["first_sleep"]`` on the job's
        first execution when given, whatever its attempt number), recording start and end."""

        @client.handler(KIND, queue=QUEUE)
        async def partition(ctx: awa.JobContext) -> None:
            job = ctx.job
            entry = Execution(job.id, job.run_lease, job.attempt, runtime, time.monotonic())
            first = all(e.job_id != job.id for e in self.executions)
            self.executions.append(entry)
            args: dict[str, Any] = ctx.args
            seconds = args.get("sleep", 0.0)
            if first and "first_sleep" in args:
                seconds = args["first_sleep"]
            try:
                await anyio.sleep(float(seconds))
                entry.outcome = "returned"
            except BaseException:
                entry.outcome = "stopped"
                raise
            finally:
                entry.ended = time.monotonic()

    def by_job(self) -> dict[int, list[Execution]]:
        jobs: dict[int, list[Execution]] = {}
        for entry in self.executions:
            jobs.setdefault(entry.job_id, []).append(entry)
        return jobs

    def first_start(self) -> dict[int, float]:
        return {job: min(e.started for e in runs) for job, runs in self.by_job().items()}

    def overlaps(self) -> tuple[int, float]:
        """(jobs with two executions overlapping in time, longest overlap in seconds); an
        execution still running counts as running until now."""
        now = time.monotonic()
        jobs, longest = 0, 0.0
        for runs in self.by_job().values():
            worst = 0.0
            for i, a in enumerate(runs):
                for b in runs[i + 1 :]:
                    shared = min(a.ended or now, b.ended or now) - max(a.started, b.started)
                    worst = max(worst, shared)
            if worst > 0:
                jobs += 1
                longest = max(longest, worst)
        return jobs, longest

    def reexecuted(self) -> int:
        return sum(1 for runs in self.by_job().values() if len(runs) > 1)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[FaultProxy]:
    started = await FaultProxy.start(database_url)
    try:
        yield started
    finally:
        await started.close()


def maintenance() -> MaintenanceConfig:
    """Fast elections (as the chaos suite); rescue at its defaults (crash_grace 0.5 s,
    holder_silence 2 s), the runtime's presence checks and beats at theirs."""
    return MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, leader_check_interval=0.2, health_interval=0.5
    )


def runtime_config(queues: dict[str, int], **overrides: Any) -> awa.RuntimeConfig:
    options: dict[str, Any] = {"queues": queues, "heartbeat_interval": 0.5, "shutdown_grace": 5.0}
    options.update(overrides)
    return awa.RuntimeConfig(**options)


def emit(request: pytest.FixtureRequest, scenario: str, **figures: object) -> None:
    """A ``partition ...`` figures line (the chaos suite's reporter)."""
    chaos_emit(request, scenario, suite="partition", **figures)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Cluster:
    """Runtimes of one test, each with its own client; aborted (bounded) at the end."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.clients: list[awa.Client] = []
        self.runtimes: list[awa.Runtime] = []

    async def start(
        self,
        url: str,
        name: str,
        *,
        role: str = "worker",
        concurrency: int = 50,
        run_maintenance: bool = False,
        **config: Any,
    ) -> awa.Runtime:
        client = awa.Client(url, pool_size=4)
        self.ledger.register(client, name)
        await client.connect()
        self.clients.append(client)
        queues = {} if role == "maintenance" else {QUEUE: concurrency}
        runtime = awa.Runtime(
            client,
            runtime_config(queues, **config),
            role=role,
            maintenance=maintenance(),
            run_maintenance=run_maintenance or role == "maintenance",
        )
        await runtime.start()
        self.runtimes.append(runtime)
        return runtime

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            for runtime in self.runtimes:
                with anyio.move_on_after(15):
                    # A crashed host re-raises here: the test asserts on crashed() instead.
                    with contextlib.suppress(Exception):
                        await runtime.abort()
            for client in self.clients:
                with anyio.move_on_after(15):
                    await client.close()


def crashed(runtime: awa.Runtime) -> str | None:
    host = runtime._host
    if host is None or not host.done():
        return None
    return "cancelled" if host.cancelled() else repr(host.exception())


async def presence_pid(raw: asyncpg.Connection, instance_id: str) -> int | None:
    """The backend holding ``instance_id``'s presence lock (``store/presence.py``)."""
    pid = await raw.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid::bigint = $1 AND objid::bigint = (hashtext($2)::bigint & 4294967295)"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        PRESENCE_LOCK_CLASS,
        instance_id,
    )
    return None if pid is None else int(pid)


def listener_pid(runtime: awa.Runtime) -> int | None:
    """The backend of the runtime's LISTEN connection (after pings its last statement is
    ``SELECT 1``, so pg_stat_activity cannot tell it apart)."""
    wakeups = runtime.wakeups
    listener = None if wakeups is None else wakeups._listener
    if listener is None or not listener.alive:
        return None
    return int(listener._conn.get_server_pid())


@dataclass(frozen=True)
class Fate:
    """The database's account of the test's jobs."""

    live: int
    completed: int
    failed: int  # failed or cancelled
    history_rows: int  # rows in awa.jobs_done (one per finished job, or a duplicate)
    retried: int  # finished after more than one attempt


async def fate(raw: asyncpg.Connection) -> Fate:
    row = await raw.fetchrow(
        """
        SELECT (SELECT count(*) FROM awa.jobs WHERE kind = $1) AS live,
               count(DISTINCT id) FILTER (WHERE state = 'completed') AS completed,
               count(DISTINCT id) FILTER (WHERE state <> 'completed') AS failed,
               count(*) AS history_rows,
               count(DISTINCT id) FILTER (WHERE attempt > 1) AS retried
          FROM awa.jobs_done WHERE kind = $1
        """,
        KIND,
    )
    assert row is not None
    return Fate(*(int(row[k]) for k in ("live", "completed", "failed", "history_rows", "retried")))


async def all_finished(raw: asyncpg.Connection) -> bool:
    return bool(await raw.fetchval("SELECT count(*) = 0 FROM awa.jobs WHERE kind = $1", KIND))


async def insert(producer: awa.Client, **args: float) -> int:
    return (await producer.insert(KIND, args, queue=QUEUE)).id


# ------------------------------------------------ 1, 2: presence connection faulted


async def keep_faulting(
    proxy: FaultProxy, raw: asyncpg.Connection, instance_id: str, fault: str, until: float
) -> int:
    """Until ``until``: whenever the runtime holds its presence lock on a connection that
    still forwards (its first, or each one it re-acquires), fault that connection. Returns
    how many presence connections were faulted."""
    hits = 0
    while time.monotonic() < until:
        pid = await presence_pid(raw, instance_id)
        target = [c for c in proxy.connections if c.backend_pid == pid]
        if pid is not None and any(c.state == "forwarding" for c in target):
            getattr(proxy, fault)(lambda c, p=pid: c.backend_pid == p)
            hits += 1
        await anyio.sleep(0.05)
    return hits


@pytest.mark.timeout(scale(120, 240))
@pytest.mark.parametrize("fault", ["sever_server_side", "blackhole"])
async def test_a_live_runtime_with_a_faulted_presence_connection_keeps_its_jobs(
    database_url: str,
    proxy: FaultProxy,
    raw: asyncpg.Connection,
    request: pytest.FixtureRequest,
    fault: str,
) -> None:
    """W (every connection through the proxy, no maintenance, concurrency 50) runs 50 jobs
    of 2-4 s while L (direct, role maintenance) leads. For FAULT_WINDOW seconds every
    presence connection W holds is faulted as soon as W has the lock on it: severed on the
    server side (the session and its lock end at once, W is never told) or blackholed both
    ways (the session lingers until the server's idle limit). W keeps beating through its
    pool, so the leader must rescue nothing: each job runs exactly once."""
    rng = random.Random()
    ledger = Ledger()
    cluster = Cluster(ledger)
    producer = awa.Client(database_url)
    await producer.connect()
    try:
        leader = await cluster.start(database_url, "L", role="maintenance")
        assert leader.leader is not None
        with anyio.fail_after(10):
            await leader.leader.wait_until_leader()
        w = await cluster.start(proxy.url(database_url), "W", concurrency=50)
        assert w.presence is not None and w.dispatchers

        before, during, after = 20, 20, 10
        for _ in range(before):
            await insert(producer, sleep=rng.uniform(2, 4))
        await wait_for(lambda: len(w.inflight) >= before, 10, what="W to run the first jobs")

        faulted_at = time.monotonic()
        until = faulted_at + FAULT_WINDOW
        hits = 0
        async with anyio.create_task_group() as tg:

            async def fault_loop() -> None:
                nonlocal hits
                hits = await keep_faulting(proxy, raw, w.instance_id, fault, until)

            tg.start_soon(fault_loop)
            for i in range(during):
                await anyio.sleep(
                    max(0.0, faulted_at + (i + 1) * FAULT_WINDOW / (during + 1) - time.monotonic())
                )
                await insert(producer, sleep=rng.uniform(2, 4))
        proxy.resume()  # the blackhole heals (held bytes delivered); severed ones stay dead
        ended_at = time.monotonic()
        claimed_at_end = w.dispatchers[0].claimed
        for _ in range(after):
            await insert(producer, sleep=rng.uniform(2, 4))
        await wait_for(lambda: all_finished(raw), 60, what="every job to finish")
        resumed_s = (
            min(
                (e.started for e in ledger.executions if e.started > ended_at), default=float("nan")
            )
            - ended_at
        )
        overlapping, longest = ledger.overlaps()
        result = await fate(raw)
        emit(
            request,
            f"presence {fault}",
            window_s=FAULT_WINDOW,
            jobs=before + during + after,
            completed=result.completed,
            failed=result.failed,
            executions=len(ledger.executions),
            reexecuted=ledger.reexecuted(),
            overlapping=overlapping,
            longest_overlap_s=longest,
            presence_faulted=hits,
            presence_losses=w.presence.losses,
            claim_pauses=w.gate.closures,
            fenced=w.presence.fenced,
            claimed_after_fault=w.dispatchers[0].claimed - claimed_at_end,
            first_claim_after_fault_s=resumed_s,
            total_s=time.monotonic() - faulted_at,
        )
        assert crashed(w) is None and crashed(leader) is None, (crashed(w), crashed(leader))
        assert hits >= 1 and w.presence.losses >= 1 and w.gate.closures >= 1  # noticed
        assert overlapping == 0, f"{overlapping} jobs executed twice concurrently"
        assert result.failed == 0, result
        assert result.completed == before + during + after and result.live == 0, result
        assert result.history_rows == result.completed, result
        # ADR 014: a live runtime's jobs are not rescued at all, and it need not fence.
        assert ledger.reexecuted() == 0 and result.retried == 0, result
        assert w.presence.fenced == 0
        # Claims resumed: the jobs inserted after the fault (and any inserted late in it,
        # while claims were paused) were claimed by W.
        assert w.gate.is_open
        assert w.dispatchers[0].claimed - claimed_at_end >= after
    finally:
        await cluster.close()
        await producer.close()


# --------------------------------------------------- 3: the whole runtime partitioned


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["blackhole", "sever_then_blackhole"])
async def test_a_partitioned_runtime_fences_itself_and_another_completes_its_jobs(
    database_url: str,
    proxy: FaultProxy,
    raw: asyncpg.Connection,
    request: pytest.FixtureRequest,
    fault: str,
) -> None:
    """W1 (through the proxy) holds 20 jobs whose first attempt would run 20 s; then every
    connection of W1 goes silent both ways, new ones too (``blackhole``; the server ends
    W1's presence session at its idle limit), or the server ends every session of W1 at
    once, W1 never told, and W1 can reach nothing more (``sever_then_blackhole``). L leads
    and rescues, W2 (direct) completes the jobs. W1 must stop its handlers before their jobs
    are rescued: no two executions of a job overlap; each job completes once."""
    jobs = 20
    ledger = Ledger()
    cluster = Cluster(ledger)
    producer = awa.Client(database_url)
    await producer.connect()
    try:
        leader = await cluster.start(database_url, "L", role="maintenance")
        assert leader.leader is not None
        with anyio.fail_after(10):
            await leader.leader.wait_until_leader()
        # Random phases of W1's presence checks and beats against the leader's passes.
        await anyio.sleep(random.uniform(0.0, 1.0))
        w1 = await cluster.start(proxy.url(database_url), "W1", concurrency=50)
        assert w1.presence is not None
        ids = {await insert(producer, first_sleep=20.0, sleep=0.2) for _ in range(jobs)}
        await wait_for(lambda: len(w1.inflight) == jobs, 10, what="W1 to hold every job")
        await cluster.start(database_url, "W2", concurrency=50)
        phase = random.uniform(0.0, 1.0)
        await anyio.sleep(phase)
        if fault == "sever_then_blackhole":
            # The runtime's slowest detection: right after a presence check was answered,
            # so the next check starts a check interval later and times out after another.
            await presence_check_answered(proxy, raw, w1.instance_id)
            proxy.sever_server_side()
        proxy.blackhole()  # every connection, and every later one
        faulted_at = time.monotonic()
        await wait_for(lambda: all_finished(raw), 60, what="W2 to complete every job")
        completed_s = time.monotonic() - faulted_at
        overlapping, longest = ledger.overlaps()
        w1_runs = [e for e in ledger.executions if e.runtime == "W1"]
        w2_runs = [e for e in ledger.executions if e.runtime == "W2"]
        stopped = [e for e in w1_runs if e.outcome == "stopped"]
        still_running = sum(1 for e in w1_runs if e.ended is None)
        fenced_s = max((e.ended or 0.0 for e in stopped), default=faulted_at) - faulted_at
        rescued_s = min((e.started for e in w2_runs), default=float("nan")) - faulted_at
        fenced = w1.presence.fenced

        # The partition heals: nothing W1 held back may change the outcome.
        proxy.resume()
        await anyio.sleep(1.5)
        result = await fate(raw)
        leases = await raw.fetch(
            "SELECT id, run_lease FROM awa.jobs_done WHERE id = ANY($1::bigint[])", list(ids)
        )
        w2_leases = {(e.job_id, e.run_lease) for e in w2_runs if e.outcome == "returned"}
        emit(
            request,
            f"runtime partitioned ({fault})",
            jobs=jobs,
            phase_s=phase,
            completed=result.completed,
            history_rows=result.history_rows,
            failed=result.failed,
            overlapping=overlapping,
            longest_overlap_s=longest,
            w1_fenced=fenced,
            w1_handlers_stopped=len(stopped),
            w1_handlers_still_running=still_running,
            fault_to_last_fence_s=fenced_s,
            fault_to_first_rescued_run_s=rescued_s,
            fault_to_all_complete_s=completed_s,
        )
        assert crashed(leader) is None, crashed(leader)
        assert result.completed == jobs and result.failed == 0 and result.live == 0, result
        assert result.history_rows == jobs, result  # exactly once in the database
        assert {(int(r["id"]), int(r["run_lease"])) for r in leases} <= w2_leases
        assert overlapping == 0, (
            f"{overlapping} jobs ran on W1 and W2 at once ({still_running} W1 handlers still"
            f" running when W2 had completed every job; W1 fenced {fenced})"
        )
        assert fenced >= 1 or len(stopped) == jobs, "W1 never fenced itself"
    finally:
        await cluster.close()
        await producer.close()


async def presence_check_answered(
    proxy: FaultProxy, raw: asyncpg.Connection, instance_id: str
) -> None:
    """Return as soon as the next answer to a presence check has reached the runtime."""
    pid = await presence_pid(raw, instance_id)
    conn = next(c for c in proxy.connections if c.backend_pid == pid)
    seen = conn.bytes_down
    await wait_for(lambda: conn.bytes_down != seen, 5, interval=0.001, what="a presence check")


@pytest.mark.timeout(120)
async def test_jobs_a_runtime_fenced_during_a_short_partition_run_again_when_it_heals(
    database_url: str,
    proxy: FaultProxy,
    raw: asyncpg.Connection,
    request: pytest.FixtureRequest,
) -> None:
    """W1 holds 10 jobs (first execution 20 s) when all its connections go silent for
    SHORT_PARTITION seconds: long enough for W1 to fence itself, too short for the server to
    end W1's presence session (idle limit 10 s), so the leader rescues nothing meanwhile.
    When the network heals W1 gets its lock back and beats again, so its fenced attempts are
    not orphaned: unless W1 hands them back, they wait for the heartbeat backstop
    (heartbeat_staleness, 30 s). Every job must run again within HANDBACK_BOUND of the heal,
    exactly once in the database, never two executions at once."""
    jobs = 10
    ledger = Ledger()
    cluster = Cluster(ledger)
    producer = awa.Client(database_url)
    await producer.connect()
    try:
        leader = await cluster.start(database_url, "L", role="maintenance")
        assert leader.leader is not None
        with anyio.fail_after(10):
            await leader.leader.wait_until_leader()
        w1 = await cluster.start(proxy.url(database_url), "W1", concurrency=50)
        assert w1.presence is not None
        ids = {await insert(producer, first_sleep=20.0, sleep=0.2) for _ in range(jobs)}
        await wait_for(lambda: len(w1.inflight) == jobs, 10, what="W1 to hold every job")
        await cluster.start(database_url, "W2", concurrency=50)
        proxy.blackhole()
        faulted_at = time.monotonic()
        await anyio.sleep(SHORT_PARTITION)
        fenced = w1.presence.fenced
        proxy.resume()
        healed_at = time.monotonic()
        await wait_for(lambda: all_finished(raw), 60, what="every job to finish")
        done_s = time.monotonic() - healed_at
        overlapping, longest = ledger.overlaps()
        reruns = [e.started - healed_at for e in ledger.executions if e.started > faulted_at]
        result = await fate(raw)
        emit(
            request,
            "runtime partitioned briefly",
            jobs=jobs,
            partition_s=SHORT_PARTITION,
            w1_fenced_during=fenced,
            completed=result.completed,
            history_rows=result.history_rows,
            overlapping=overlapping,
            rerun_after_heal_s_max=max(reruns, default=float("nan")),
            all_done_after_heal_s=done_s,
            heartbeat_staleness_s=maintenance().heartbeat_staleness,
        )
        assert crashed(w1) is None and crashed(leader) is None, (crashed(w1), crashed(leader))
        assert fenced >= 1, "W1 did not fence itself during the partition"
        assert overlapping == 0, f"{overlapping} jobs executed twice at once ({longest:.1f}s)"
        assert result.completed == jobs and result.history_rows == jobs, result
        assert len(ids) == jobs and result.failed == 0 and result.live == 0, result
        assert done_s <= HANDBACK_BOUND, (
            f"the jobs W1 fenced ran again {done_s:.1f}s after the partition healed"
            f" (bound {HANDBACK_BOUND:g}s; the heartbeat backstop is"
            f" {maintenance().heartbeat_staleness:g}s): fenced attempts are not handed back"
        )
    finally:
        await cluster.close()
        await producer.close()


# --------------------------------------------------------------- 4: LISTEN faults


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "fault",
    [
        "half_open",
        "killed",
    ],
)
async def test_jobs_inserted_after_a_listen_fault_are_picked_up_at_the_fallback_rate(
    database_url: str,
    proxy: FaultProxy,
    raw: asyncpg.Connection,
    request: pytest.FixtureRequest,
    fault: str,
) -> None:
    """W (through the proxy, LISTEN on, poll_interval 5 s) sleeps on NOTIFY. At the fault
    (its LISTEN connection blackholed both ways, or its backend terminated) a producer
    starts inserting one job every 20 ms for STREAM seconds: insert -> handler start must
    stay under poll_interval_without_notify + 50 ms (p99), and every job must run."""
    ledger = Ledger()
    cluster = Cluster(ledger)
    producer = awa.Client(database_url)
    await producer.connect()
    try:
        w = await cluster.start(proxy.url(database_url), "W", concurrency=50)
        config = w.config
        assert config.notify and w.wakeups is not None
        wakeups = w.wakeups
        await wait_for(lambda: wakeups.listening, 10, what="W to listen")
        bound = config.poll_interval_without_notify + 0.05

        async def stream(seconds: float) -> dict[int, float]:
            inserted: dict[int, float] = {}
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                began = time.monotonic()
                inserted[await insert(producer, sleep=0.0)] = began
                await anyio.sleep(STREAM_PAUSE)
            return inserted

        # Baseline: NOTIFY wakes the dispatcher (it sleeps 5 s otherwise).
        await anyio.sleep(0.5)
        baseline = await stream(0.5)
        await wait_for(lambda: all_finished(raw), 10, what="the baseline jobs")
        starts = ledger.first_start()
        base = [starts[j] - t for j, t in baseline.items()]

        pid = listener_pid(w)
        assert pid is not None
        losses = wakeups.losses
        if fault == "half_open":
            proxy.blackhole(lambda c: c.backend_pid == pid)
        else:
            await raw.execute("SELECT pg_terminate_backend($1)", pid)
        faulted_at = time.monotonic()
        doubted: list[float] = []
        detected: list[float] = []
        relistening: list[float] = []

        async def watch() -> None:
            await wait_for(lambda: not wakeups.listening, 30, interval=0.005)
            doubted.append(time.monotonic() - faulted_at)
            await wait_for(lambda: wakeups.losses > losses, 30, interval=0.005)
            detected.append(time.monotonic() - faulted_at)
            await wait_for(lambda: wakeups.listening, 30, interval=0.005)
            relistening.append(time.monotonic() - faulted_at)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            after = await stream(STREAM)
        await wait_for(lambda: all_finished(raw), 30, what="every job inserted after the fault")
        starts = ledger.first_start()
        missing = [j for j in after if j not in starts]
        latency = [starts[j] - t for j, t in after.items() if j in starts]
        result = await fate(raw)
        p99 = percentile(latency, 0.99)
        emit(
            request,
            f"LISTEN {fault}",
            jobs=len(after),
            lost=len(missing) + result.failed,
            baseline_p99_ms=percentile(base, 0.99) * 1000,
            p50_ms=percentile(latency, 0.5) * 1000,
            p99_ms=p99 * 1000,
            max_ms=max(latency) * 1000,
            over_bound=sum(1 for x in latency if x > bound),
            bound_ms=bound * 1000,
            polling_from_s=doubted[0] if doubted else float("nan"),
            detected_s=detected[0] if detected else float("nan"),
            listening_again_s=relistening[0] if relistening else float("nan"),
        )
        assert crashed(w) is None, crashed(w)
        assert (
            not missing and result.failed == 0 and result.completed == len(after) + len(baseline)
        ), result
        assert detected, "the LISTEN fault was never noticed"
        assert p99 <= bound, (
            f"pickup p99 {p99 * 1000:.0f} ms from the fault > {bound * 1000:.0f} ms "
            f"(LISTEN loss noticed after {detected[0]:.2f}s)"
        )
    finally:
        await cluster.close()
        await producer.close()


@pytest.mark.timeout(60)
async def test_a_slow_listen_connection_is_doubted_not_dropped(
    database_url: str, proxy: FaultProxy, request: pytest.FixtureRequest
) -> None:
    """A LISTEN connection that answers its probes late (0.3 s each way: a busy network, not
    a dead peer) puts the listener in doubt, so dispatchers poll meanwhile, but it is not
    dropped and reconnected; once the delay ends it is trusted again."""
    cluster = Cluster(Ledger())
    try:
        w = await cluster.start(proxy.url(database_url), "W", concurrency=5)
        assert w.wakeups is not None
        wakeups = w.wakeups
        await wait_for(lambda: wakeups.listening, 10, what="W to listen")
        pid = listener_pid(w)
        assert pid is not None
        doubts, losses = wakeups.doubts, wakeups.losses
        proxy.delay(0.3, lambda c: c.backend_pid == pid)
        await wait_for(lambda: wakeups.doubts >= doubts + 3, 10, what="probes to answer late")
        doubted = wakeups.doubts - doubts
        proxy.resume(lambda c: c.backend_pid == pid)
        await wait_for(lambda: wakeups.listening, 5, what="the listener to be trusted again")
        emit(request, "LISTEN slow", doubts=doubted, reconnects=wakeups.losses - losses)
        assert wakeups.losses == losses, "a slow LISTEN connection was dropped as dead"
        assert listener_pid(w) == pid
    finally:
        await cluster.close()
