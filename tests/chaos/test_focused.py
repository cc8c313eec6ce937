"""Focused reproductions of bugs the chaos scenarios found, one test each (all fixed in
session 2; each test fails on the code before its fix): untyped InternalClientError from a
terminated pooled connection, the leader losing its connection while taking office, a dead
runtime reported ready, the runtime sharing the application's pool, and a late result of a
rescued attempt handing over the new attempt's entry.
"""

from __future__ import annotations

from functools import partial
from typing import Self

import anyio
import asyncpg
import pytest

import awa
import awa.maintenance.leader as leader_module
from awa.errors import DatabaseUnavailable
from awa.store import Store
from awa.store.attempts import lease_generation
from awa.worker.heartbeat import Heartbeat
from support.chaos import Crew, fast_maintenance, leader_lock_holders, wait_for

ROUNDS = 40


async def test_terminated_idle_pool_connection_yields_only_typed_errors(
    database_url: str, raw: asyncpg.Connection
) -> None:
    store = await Store.open(database_url, min_size=1, max_size=1)
    untyped: list[str] = []
    typed = 0
    try:
        for _ in range(ROUNDS):
            pid = await store.db.pool.fetchval("SELECT pg_backend_pid()")
            assert await raw.fetchval("SELECT pg_terminate_backend($1)", pid)
            await wait_for(partial(gone, raw, pid), 10, interval=0.001, what="the backend to exit")
            try:
                await store.jobs.claim_batch("chaos", ["chaos"], 1, "focused-test")
            except DatabaseUnavailable:
                typed += 1
            except Exception as exc:  # what this test is about
                untyped.append(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    finally:
        await store.close()
    assert untyped == [], f"{len(untyped)}/{ROUNDS} untyped errors (typed: {typed})"


async def gone(raw: asyncpg.Connection, pid: int) -> bool:
    return not await raw.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


class SlowToTakeOffice(Store):
    """A maintenance store whose pool takes ``delay`` seconds longer to open: a slow network
    stretches the moment between winning the leader lock and listening on the leader
    connection, so the test can terminate that connection inside it."""

    delay = 1.5

    @classmethod
    async def open(  # type: ignore[override]
        cls, url: str, *, min_size: int = 1, max_size: int = 10, term: int | None = None
    ) -> Self:
        store = await Store.open(url, min_size=min_size, max_size=max_size, term=term)
        await anyio.sleep(cls.delay)
        return store  # type: ignore[return-value]


async def test_leader_losing_its_connection_while_taking_office_is_not_fatal(
    database_url: str, raw: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SlowToTakeOffice, "delay", 1.5)
    monkeypatch.setattr(leader_module, "Store", SlowToTakeOffice)
    async with Crew(database_url, 1, maintenance=fast_maintenance()) as crew:
        (runtime,) = crew.runtimes
        assert runtime.leader is not None
        # The lock is won, the lanes' pools are still opening: terminate the lock's session.
        (pid,) = await wait_for(lambda: leader_lock_holders(raw), 15, what="the lock")
        # And the term begun: the leader runs on its own thread, racing this test (ADR 013).
        await wait_for(lambda: raw.fetchval("SELECT term >= 1 FROM awa.leader_term"), 15)
        assert not runtime.leader.is_leader
        assert await raw.fetchval("SELECT pg_terminate_backend($1)", pid)
        monkeypatch.setattr(SlowToTakeOffice, "delay", 0.0)

        async def settled() -> bool:
            if crew.crashed():
                return True
            # Leading again on a new session. (Whether the killed attempt counted as a term
            # depends on where the kill landed: before or after the term bump, ADR 012.)
            holders = await leader_lock_holders(raw)
            return bool(crew.leaders()) and bool(holders) and pid not in holders

        await wait_for(settled, 20, what="leadership on a new session, or a crash")
        assert crew.crashed() == []
        assert crew.leaders() == [runtime]


class Boom(BaseException):
    """Not an ``Exception``: no handler-level ``except Exception`` stops it."""


async def test_a_runtime_whose_host_task_died_does_not_report_running(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Handlers can no longer kill their runtime (a BaseException from one fails only its
    # attempt: tests/chaos/test_faults_errors.py), so the host is killed from inside a service.
    async def beat(self: Heartbeat) -> None:
        raise Boom("escapes a background loop")

    monkeypatch.setattr(Heartbeat, "beat", beat)
    client = awa.Client(database_url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    async with client:
        runtime = awa.Runtime(
            client,
            awa.RuntimeConfig(queues={"default": 1}, heartbeat_interval=0.05),
            run_maintenance=False,
        )
        await runtime.start()
        try:
            host = runtime._host
            assert host is not None
            await wait_for(host.done, 15, what="the host task to end")
            assert runtime.state != "running"
            assert runtime.failure is not None
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await runtime.abort()
                except BaseExceptionGroup as group:  # the host's own death, re-raised
                    assert group.subgroup(Boom) is not None


async def test_exhausted_application_pool_does_not_starve_the_heartbeat(
    database_url: str, raw: asyncpg.Connection
) -> None:
    staleness = 1.5
    async with Crew(
        database_url,
        1,
        queues={"chaos": 1},
        pool_size=3,
        record=False,
        heartbeat_interval=staleness / 5,
        maintenance=fast_maintenance(heartbeat_staleness=staleness),
    ) as crew:
        client = crew.clients[0]
        job = await client.insert("chaos", {"sleep": 6 * staleness}, queue="chaos")
        await wait_for(lambda: running_lease(raw, job.id), 15, what="the job to run")
        pool = client.store.db.pool
        held = []
        try:
            with anyio.fail_after(15):
                for _ in range(pool.get_max_size()):
                    held.append(await pool.acquire())
            await anyio.sleep(3 * staleness)
            # The attempt is alive and well in this process; it must still be the one running.
            row = await raw.fetchrow(
                "SELECT state, run_lease, errors FROM awa.jobs WHERE id = $1", job.id
            )
            running = await running_lease(raw, job.id)
            assert lease_generation(running) == 1, dict(row) if row else None
        finally:
            for conn in held:
                await pool.release(conn)


async def running_lease(raw: asyncpg.Connection, job_id: int) -> int:
    value = await raw.fetchval(
        "SELECT run_lease FROM awa.jobs WHERE id = $1 AND state = 'running'", job_id
    )
    return int(value or 0)


async def test_a_late_result_of_a_rescued_attempt_does_not_silence_the_next_one(
    database_url: str, store: Store
) -> None:
    from awa.clock import SystemClock
    from awa.handlers import JobContext
    from awa.model import JobState
    from awa.telemetry import instruments
    from awa.worker import CompletionBuffer, Heartbeat, InFlight
    from awa.worker.completions import PendingResult
    from awa.worker.inflight import InFlightJob, StopReason
    from awa.worker.outcomes import Decision

    client = awa.Client(database_url)
    async with client:
        job = await client.insert("chaos", queue="chaos")
    # Attempt 1 is claimed, then rescued while still running here (its holder looked dead).
    (first,) = await store.jobs.claim_batch("chaos", ["chaos"], 1, "same-runtime")
    maintenance = await Store.open(database_url, max_size=1)
    try:
        outcome = await maintenance.recovery.rescue(
            [(first.id, first.run_lease)],
            from_states=["running"],
            reason="heartbeat older than 30s",
            retry_base_delay=0.0,
        )
    finally:
        await maintenance.close()
    assert outcome.retried == 1
    # The same runtime claims the job again: attempt 2 runs beside the old attempt 1.
    (second,) = await store.jobs.claim_batch("chaos", ["chaos"], 1, "same-runtime")
    assert lease_generation(second.run_lease) == lease_generation(first.run_lease) + 1
    inflight = InFlight()
    clock = SystemClock()
    inflight.add(InFlightJob(first, JobContext(first)))
    current = InFlightJob(second, JobContext(second))
    inflight.add(current)
    buffer = CompletionBuffer(store, inflight, clock, instruments(), flush_interval=1, batch=10)
    # Attempt 1 finishes late; its (stale) result goes to the buffer.
    buffer.add(
        PendingResult(first.id, first.run_lease, "chaos", Decision(JobState.COMPLETED, "done"))
    )
    # An operator cancels the job: the next heartbeat must stop attempt 2.
    async with client:
        await client.cancel_job(job.id, "operator says stop")
    await Heartbeat(store, inflight, clock, 1.0).beat()
    assert current.stop_reason is StopReason.CANCEL_REQUESTED
