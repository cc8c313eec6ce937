"""Dispatch: run_lease guarding of stale results, per-queue concurrency limits, NOTIFY
wake-ups and the polling fallback, and kinds no process handles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg

import awa
from awa.store import FinishedAttempt, Rescheduled
from awa.store.attempts import lease_generation

TERMINAL = {awa.JobState.COMPLETED, awa.JobState.FAILED, awa.JobState.CANCELLED}


def make_config(**overrides: Any) -> awa.RuntimeConfig:
    options: dict[str, Any] = {
        "queues": {"default": 4},
        "heartbeat_interval": 0.1,
        "poll_interval": 0.2,
        "shutdown_grace": 5.0,
    }
    options.update(overrides)
    return awa.RuntimeConfig(**options)


async def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll an async or sync condition under a generous limit."""
    with anyio.fail_after(timeout):
        while True:
            value = check()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return
            await anyio.sleep(0.02)


async def wait_job(
    client: awa.Client, job_id: int, predicate: Callable[[awa.Job], bool], timeout: float = 10.0
) -> awa.Job:
    with anyio.fail_after(timeout):
        while True:
            job = await client.get_job(job_id)
            if predicate(job):
                return job
            await anyio.sleep(0.02)


# ---------------------------------------------------------------------- run_lease guard


async def test_stale_results_are_rejected_after_rescue_and_reclaim(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        store = client.store
        job = await client.insert("work", max_attempts=5)
        [first] = await store.jobs.claim_batch("default", ["work"], 1, "runtime-a")
        assert lease_generation(first.run_lease) == 1

        # a rescue puts the job back in line (lease kept), then another runtime claims it
        async with store.db.connection() as conn:
            await conn.execute("UPDATE awa.jobs SET state = 'available' WHERE id = $1", job.id)
        [second] = await store.jobs.claim_batch("default", ["work"], 1, "runtime-b")
        assert second.id == job.id
        assert lease_generation(second.run_lease) == 2
        assert second.attempt == 2

        old = first.run_lease
        assert await store.jobs.complete_batch([job.id], [old], [{"from": "a"}]) == set()
        assert (
            await store.jobs.finalize_batch(
                [FinishedAttempt(job.id, old, awa.JobState.FAILED, {"m": "a"})]
            )
            == set()
        )
        later = datetime.now(UTC) + timedelta(hours=1)
        assert (
            await store.jobs.reschedule_batch(
                [Rescheduled(job.id, old, awa.JobState.RETRYABLE, later, {"m": "a"}, False)]
            )
            == set()
        )
        lost, cancel = await store.jobs.heartbeat([job.id], [old], [{"p": "a"}])
        assert lost == {job.id}
        assert not cancel

        untouched = await client.get_job(job.id)
        assert untouched.state is awa.JobState.RUNNING
        assert untouched.claimed_by == "runtime-b"
        assert untouched.errors == []
        assert untouched.progress is None

        # the current holder's result applies
        assert await store.jobs.complete_batch([job.id], [second.run_lease], [{"from": "b"}]) == {
            job.id
        }
        done = await client.get_job(job.id)
        assert done.state is awa.JobState.COMPLETED
        assert done.result == {"from": "b"}


async def test_runtime_counts_stale_completion_and_does_not_overwrite_job(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()
    release = anyio.Event()

    @client.handler("work")
    async def work(ctx: awa.JobContext) -> str:
        started.set()
        await release.wait()
        return "late result"

    async with client:
        job = await client.insert("work")
        # a long heartbeat: the handler finishes before any beat could notice the takeover;
        # no maintenance leader, whose crash rescue would otherwise move the job again
        runtime = awa.Runtime(client, make_config(heartbeat_interval=30.0), run_maintenance=False)
        async with runtime:
            with anyio.fail_after(10):
                await started.wait()
            async with client.store.db.connection() as conn:
                taken = await conn.fetchval(
                    "UPDATE awa.jobs SET run_lease = run_lease + 1, claimed_by = 'rescuer',"
                    " attempt = attempt + 1 WHERE id = $1 RETURNING run_lease",
                    job.id,
                )
            release.set()
            assert runtime.buffer is not None
            buffer = runtime.buffer
            await wait_until(lambda: buffer.stale == 1)
            assert buffer.applied == 0
        stored = await client.get_job(job.id)
    assert stored.state is awa.JobState.RUNNING
    assert stored.claimed_by == "rescuer"
    assert stored.run_lease == taken
    assert stored.result is None
    assert buffer.stale == 1


async def test_runtime_stops_handler_whose_lease_moved_on_at_heartbeat(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()
    stopped = anyio.Event()

    @client.handler("work")
    async def work(ctx: awa.JobContext) -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        return "never"

    async with client:
        job = await client.insert("work")
        # no maintenance leader: its crash rescue would move the simulated takeover again
        runtime = awa.Runtime(client, make_config(heartbeat_interval=0.1), run_maintenance=False)
        async with runtime:
            with anyio.fail_after(10):
                await started.wait()
            async with client.store.db.connection() as conn:
                await conn.execute(
                    "UPDATE awa.jobs SET run_lease = run_lease + 1, claimed_by = 'rescuer'"
                    " WHERE id = $1",
                    job.id,
                )
            with anyio.fail_after(10):
                await stopped.wait()
            await wait_until(lambda: len(runtime.inflight) == 0)
            assert runtime.buffer is not None
            assert runtime.buffer.applied == 0
        stored = await client.get_job(job.id)
    assert stored.state is awa.JobState.RUNNING
    assert stored.claimed_by == "rescuer"
    assert stored.errors == []


# ------------------------------------------------------------------ concurrency limits


async def test_queue_concurrency_limit_is_never_exceeded(database_url: str) -> None:
    client = awa.Client(database_url)
    limit = 3
    running = 0
    peak = 0
    finished = 0
    all_done = anyio.Event()
    total = 24

    @client.handler("slow")
    async def slow(ctx: awa.JobContext) -> int:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        try:
            await anyio.sleep(0.03)
        finally:
            running -= 1
        finished += 1
        if finished == total:
            all_done.set()
        return int(ctx.args["i"])

    async with client:
        await client.insert_many([client.params("slow", {"i": i}) for i in range(total)])
        async with awa.Runtime(client, make_config(queues={"default": limit})):
            with anyio.fail_after(20):
                await all_done.wait()
        completed = await client.list_jobs(state="completed", limit=100)
    assert peak == limit
    assert len(completed) == total
    assert sorted(j.result for j in completed) == list(range(total))


async def test_each_queue_has_its_own_concurrency_limit(database_url: str) -> None:
    client = awa.Client(database_url)
    limits = {"a": 2, "b": 5}
    running = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    per_queue = 15
    finished = 0
    all_done = anyio.Event()

    def make_handler(queue: str) -> Callable[[awa.JobContext], Any]:
        async def handler(ctx: awa.JobContext) -> None:
            nonlocal finished
            running[queue] += 1
            peak[queue] = max(peak[queue], running[queue])
            try:
                await anyio.sleep(0.03)
            finally:
                running[queue] -= 1
            finished += 1
            if finished == 2 * per_queue:
                all_done.set()

        return handler

    client.registry.register("in_a", make_handler("a"), queue="a")
    client.registry.register("in_b", make_handler("b"), queue="b")

    async with client:
        await client.insert_many(
            [client.params("in_a") for _ in range(per_queue)]
            + [client.params("in_b") for _ in range(per_queue)]
        )
        # claim_batch below the limit forces several claims per queue
        config = make_config(queues=dict(limits), claim_batch=2)
        async with awa.Runtime(client, config):
            with anyio.fail_after(20):
                await all_done.wait()
        completed = await client.list_jobs(state="completed", limit=100)
    assert peak == limits
    assert len(completed) == 2 * per_queue


# ------------------------------------------------------------ wake-ups and polling


async def test_notify_wakes_idle_runtime_long_before_poll_interval(database_url: str) -> None:
    client = awa.Client(database_url)
    done: dict[int, anyio.Event] = {}

    @client.handler("ping")
    async def ping(ctx: awa.JobContext) -> None:
        done[ctx.args["n"]].set()

    async with client:
        config = make_config(notify=True, poll_interval=30.0)
        runtime = awa.Runtime(client, config)
        async with runtime:
            assert runtime.wakeups is not None and runtime.wakeups.listening
            for n in range(3):
                # let every dispatcher settle into its 30 s wait, then insert
                await anyio.sleep(0.2)
                done[n] = anyio.Event()
                await client.insert("ping", {"n": n})
                with anyio.fail_after(5):
                    await done[n].wait()


async def test_polling_fallback_picks_up_jobs_without_notify(database_url: str) -> None:
    client = awa.Client(database_url)
    done: dict[int, anyio.Event] = {}

    @client.handler("ping")
    async def ping(ctx: awa.JobContext) -> None:
        done[ctx.args["n"]].set()

    async with client:
        config = make_config(notify=False, poll_interval=30.0, poll_interval_without_notify=0.1)
        runtime = awa.Runtime(client, config)
        async with runtime:
            assert runtime.wakeups is not None and not runtime.wakeups.listening
            for n in range(3):
                await anyio.sleep(0.2)
                done[n] = anyio.Event()
                await client.insert("ping", {"n": n})
                with anyio.fail_after(5):
                    await done[n].wait()


async def test_retry_job_wakes_idle_runtime(database_url: str) -> None:
    client = awa.Client(database_url)
    runs = 0
    ran_again = anyio.Event()

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("first attempt fails")
        ran_again.set()

    async with client:
        job = await client.insert("flaky", max_attempts=3)
        # a long backoff: nothing but retry_job can make the job due again
        config = make_config(notify=True, poll_interval=30.0, backoff=awa.Backoff(base=600.0))
        async with awa.Runtime(client, config):
            await wait_job(client, job.id, lambda j: j.state is awa.JobState.RETRYABLE)
            await client.retry_job(job.id)
            with anyio.fail_after(5):
                await ran_again.wait()
            final = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert final.state is awa.JobState.COMPLETED
    assert final.attempt == 2


async def test_unhandled_kind_is_never_claimed_and_is_reported(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    total = 10
    finished = 0
    all_done = anyio.Event()

    @client.handler("known")
    async def known(ctx: awa.JobContext) -> None:
        nonlocal finished
        finished += 1
        if finished == total:
            all_done.set()

    async with client:
        orphan = await client.insert("unknown_kind", {"x": 1})
        await client.insert_many([client.params("known") for _ in range(total)])
        runtime = awa.Runtime(client, make_config(poll_interval=0.05))
        async with runtime:
            with anyio.fail_after(10):
                await all_done.wait()
            # give the dispatcher a few more polls in which it could (wrongly) claim it
            await anyio.sleep(0.3)
            still = await client.get_job(orphan.id)
            assert still.state is awa.JobState.AVAILABLE
            assert still.attempt == 0
            assert still.run_lease == 0
            assert still.claimed_by is None
            report = await client.store.admin.unhandled_kinds(60.0)
            assert report == [("default", "unknown_kind", 1)]
            assert runtime.dispatchers[0].claimed == total
        completed = await client.list_jobs(state="completed", kind="known", limit=100)
        assert len(completed) == total


async def test_unhandled_kinds_counts_only_live_runtimes(database_url: str) -> None:
    clock = awa.FakeClock()
    async with awa.Client(database_url, clock=clock) as client:
        store = client.store
        await client.insert("known", delay=3600)  # scheduled: never reported
        await client.insert("known", queue="elsewhere")
        await client.insert("other", queue="elsewhere")
        await client.insert("other", queue="elsewhere")
        now = clock.now()
        expected = [("elsewhere", "other", 2), ("elsewhere", "known", 1)]
        assert await store.admin.unhandled_kinds(60.0, now) == expected

        await store.runtimes.register_runtime(
            "peer", "host", 1, "worker", {"elsewhere": 1}, ["known"], now
        )
        assert await store.admin.unhandled_kinds(60.0, now) == [("elsewhere", "other", 2)]
        # a peer not seen within the liveness window no longer counts
        later = now + timedelta(seconds=61)
        assert await store.admin.unhandled_kinds(60.0, later) == expected
        # nor does a peer that stopped cleanly
        await store.runtimes.stop_runtime("peer", now)
        assert await store.admin.unhandled_kinds(60.0, now) == expected


async def test_jobs_are_dispatched_in_priority_then_age_order(database_url: str) -> None:
    client = awa.Client(database_url)
    order: list[int] = []
    priorities = [4, 1, 3, 2, 1, 4, 2]
    all_done = anyio.Event()

    @client.handler("ordered")
    async def ordered(ctx: awa.JobContext) -> None:
        order.append(ctx.job.id)
        if len(order) == len(priorities):
            all_done.set()

    async with client:
        jobs = [await client.insert("ordered", priority=p) for p in priorities]
        config = make_config(queues={"default": 1}, claim_batch=1)
        async with awa.Runtime(client, config):
            with anyio.fail_after(10):
                await all_done.wait()
    expected = [j.id for j in sorted(jobs, key=lambda j: (j.priority, j.run_at, j.id))]
    assert order == expected
