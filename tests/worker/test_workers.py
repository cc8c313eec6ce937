"""Execution slots (ADR 037): a dispatcher runs its jobs on long-lived worker tasks, one per
busy slot, instead of a task per job; each job still gets its own context variables, and a
handler that leaves its task cancelled cannot disturb the jobs that run after it."""

from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.lowlevel

import awa


def make_config(concurrency: int) -> awa.RuntimeConfig:
    return awa.RuntimeConfig(
        queues={"default": concurrency},
        heartbeat_interval=0.1,
        poll_interval=0.2,
        shutdown_grace=5.0,
    )


async def run_until(client: awa.Client, concurrency: int, done: anyio.Event) -> None:
    async with awa.Runtime(client, make_config(concurrency)):
        with anyio.fail_after(30):
            await done.wait()


async def test_jobs_reuse_at_most_one_task_per_slot(database_url: str) -> None:
    client = awa.Client(database_url)
    total, slots = 60, 4
    tasks: set[asyncio.Task[Any]] = set()  # strong references: ids are never reused
    done = anyio.Event()
    finished = 0

    @client.handler("step")
    async def step(ctx: awa.JobContext) -> None:
        nonlocal finished
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        await anyio.sleep(0.001)
        finished += 1
        if finished == total:
            done.set()

    async with client:
        await client.insert_many([client.params("step", {"i": i}) for i in range(total)])
        await run_until(client, slots, done)
        completed = await client.list_jobs(state="completed", limit=100)
    assert len(completed) == total
    assert 1 <= len(tasks) <= slots  # a task per job would be 60


async def test_context_variables_a_handler_sets_stay_with_its_job(database_url: str) -> None:
    client = awa.Client(database_url)
    marker: ContextVar[int | None] = ContextVar("marker", default=None)
    seen: list[int | None] = []
    total = 5
    done = anyio.Event()

    @client.handler("mark")
    async def mark(ctx: awa.JobContext) -> None:
        seen.append(marker.get())  # what an earlier job on this slot set must not show
        marker.set(ctx.job.id)
        await anyio.lowlevel.checkpoint()
        assert marker.get() == ctx.job.id  # the job's own value survives its awaits
        if len(seen) == total:
            done.set()

    async with client:
        await client.insert_many([client.params("mark", {}) for _ in range(total)])
        await run_until(client, 1, done)  # one slot: every job runs on the same worker
        completed = await client.list_jobs(state="completed", limit=10)
    assert seen == [None] * total
    assert len(completed) == total


async def test_a_task_left_cancelled_by_a_handler_does_not_reach_later_jobs(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    done = anyio.Event()
    outcomes: list[str] = []

    @client.handler("rogue")
    async def rogue(ctx: awa.JobContext) -> str:
        # Cancels its own task and swallows the CancelledError without uncancel(): the
        # task's cancel count stays raised (its own business, as long as it ends there).
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        return "done"

    @client.handler("slow")
    async def slow(ctx: awa.JobContext) -> None:
        try:
            await anyio.sleep(5)
        finally:
            outcomes.append("slow")
            done.set()

    async with client:
        first = await client.insert("rogue", queue="default")
        await client.insert("slow", queue="default", timeout=0.2, max_attempts=1, priority=4)
        await run_until(client, 1, done)
        rogue_job = await client.get_job(first.id)
        with anyio.fail_after(10):
            while True:
                failed = await client.list_jobs(state="failed", limit=10)
                if failed:
                    break
                await anyio.sleep(0.02)
    assert rogue_job.state is awa.JobState.COMPLETED
    assert rogue_job.result == "done"
    # The later job's deadline still works: it failed for its timeout, not for a stray cancel.
    [slow_job] = failed
    assert slow_job.errors[-1]["kind"] == "timeout", slow_job.errors
    assert outcomes == ["slow"]
