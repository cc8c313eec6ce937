"""Claims at insert (ADR 045), on a real server: a producer sharing its client with a
running runtime inserts jobs already claimed for it, and every case the ADR sends down the
ordinary path stays there.

The runtimes here poll rarely and do not LISTEN (``QUIET``): a job that runs promptly was
taken by the insert, not by a claim of the dispatcher's own. Each test reads what it
asserts from the database or from a real Prometheus scrape, never from its own bookkeeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import asyncpg
import pytest

import awa
from awa.errors import DatabaseUnavailable
from awa.telemetry import Telemetry
from support.chaos import wait_for
from support.prometheus import exporting, key, scrape

Handler = Callable[[awa.JobContext], Awaitable[None]]

#: No LISTEN and a poll far beyond any test: only the insert can hand these runtimes a job.
QUIET: dict[str, Any] = {
    "queues": {"default": 2},
    "notify": False,
    "poll_interval_without_notify": 600.0,
    "heartbeat_interval": 0.2,
    "shutdown_grace": 5.0,
}


async def state_of(raw: asyncpg.Connection, job_id: int) -> str | None:
    live = await raw.fetchval("SELECT state::text FROM awa.jobs WHERE id = $1", job_id)
    if live is not None:
        return str(live)
    done = await raw.fetchval("SELECT state::text FROM awa.jobs_done WHERE id = $1", job_id)
    return None if done is None else str(done)


class World:
    """One client with a recording handler for ``work`` (unless given one) and ``other``,
    and its runtime (``QUIET`` unless ``config`` says otherwise)."""

    def __init__(self, url: str, handler: Handler | None = None, **config: Any) -> None:
        self.client = awa.Client(url)
        self.ran: list[tuple[int, int, dict[str, Any]]] = []  #: (id, attempt, args)
        self.gate = anyio.Event()
        self.gate.set()
        self.config = awa.RuntimeConfig(**{**QUIET, **config})
        self.runtime = awa.Runtime(self.client, self.config, run_maintenance=False)

        async def work(ctx: awa.JobContext) -> None:
            args = ctx.job.args
            self.ran.append((ctx.job.id, ctx.job.attempt, args))
            args["touched by the handler"] = True
            await self.gate.wait()

        self.client.handler("work")(handler or work)
        self.client.handler("other")(work)

    @property
    def dispatcher(self) -> Any:
        [dispatcher] = self.runtime.dispatchers
        return dispatcher

    def ran_ids(self) -> list[int]:
        return [job_id for job_id, _, _ in self.ran]

    async def settled(self) -> None:
        """Until the dispatcher's start-up claim has returned: while a claim is under way
        its slots are not free for an insert (they may be filled by it)."""
        await wait_for(lambda: self.dispatcher._claiming == 0)


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    w = World(database_url)
    async with w.client, w.runtime:
        await w.settled()
        yield w


async def test_an_insert_with_a_free_slot_is_claimed_and_runs_at_once(
    world: World, raw: asyncpg.Connection
) -> None:
    job = await world.client.insert("work", {"n": 1})
    assert job.state is awa.JobState.RUNNING
    assert job.attempt == 1
    assert job.claimed_by == world.runtime.instance_id
    await wait_for(lambda: world.ran_ids() == [job.id])
    row = await raw.fetchrow(
        "SELECT attempt, claimed_by, run_lease, attempted_at = created_at AS same"
        " FROM awa.jobs WHERE id = $1",
        job.id,
    )
    assert row is not None and row["attempt"] == 1 and row["same"]
    assert row["claimed_by"] == world.runtime.instance_id
    assert row["run_lease"] >> 32 == 1  # the first lease generation, as a claim draws it
    await wait_for(lambda: _is(raw, job.id, "completed"))
    assert world.dispatcher.active == 0
    # The producer's job and the handler's are decoded apart.
    assert "touched by the handler" not in job.args


async def _is(raw: asyncpg.Connection, job_id: int, state: str) -> bool:
    return await state_of(raw, job_id) == state


async def test_a_backlog_ahead_keeps_the_order_and_the_slot_goes_back(
    world: World, database_url: str, raw: asyncpg.Connection
) -> None:
    # Jobs inserted by another client (no runtime of its own) stay available: the quiet
    # dispatcher does not claim them. A handled kind at priority 2 is ahead of a new job at
    # priority 2 or 3, not of one at priority 1; a kind nobody here handles is never ahead.
    async with awa.Client(database_url) as other:
        ahead = await other.insert("work", {"backlog": True}, priority=2)
        await other.insert("nobody_handles_this", priority=1)
    behind = await world.client.insert("work", {"n": 2}, priority=3)
    same = await world.client.insert("other", {"n": 3}, priority=2)
    assert behind.state is awa.JobState.AVAILABLE
    assert same.state is awa.JobState.AVAILABLE
    assert world.dispatcher.active == 0, "a job not claimed gives its slot back"
    urgent = await world.client.insert("work", {"n": 4}, priority=1)
    assert urgent.state is awa.JobState.RUNNING
    await wait_for(lambda: world.ran_ids() == [urgent.id])
    for job_id in (ahead.id, behind.id, same.id):
        assert await state_of(raw, job_id) == "available"


async def test_a_paused_queue_claims_nothing_at_insert(
    world: World, raw: asyncpg.Connection
) -> None:
    await world.client.queues.pause("default", "maintenance window")
    job = await world.client.insert("work")
    assert job.state is awa.JobState.AVAILABLE
    assert world.dispatcher.active == 0
    assert await state_of(raw, job.id) == "available"


async def test_what_takes_the_ordinary_path(world: World, raw: asyncpg.Connection) -> None:
    client = world.client
    async with client.store.db.connection() as conn, conn.transaction():
        in_callers_transaction = await client.insert("work", conn=conn)
    unique = await client.insert("work", unique_key="only-one")
    later = await client.insert("work", delay=60)
    unknown_kind = await client.insert("nobody_handles_this")
    other_queue = await client.insert("work", queue="elsewhere")
    assert in_callers_transaction.state is awa.JobState.AVAILABLE
    assert unique.state is awa.JobState.AVAILABLE
    assert later.state is awa.JobState.SCHEDULED
    assert unknown_kind.state is awa.JobState.AVAILABLE
    assert other_queue.state is awa.JobState.AVAILABLE
    assert world.dispatcher.active == 0
    rows = await raw.fetch("SELECT state::text FROM awa.jobs WHERE claimed_by IS NOT NULL")
    assert rows == []


async def test_full_slots_and_a_stopped_runtime_take_the_ordinary_path(
    world: World, raw: asyncpg.Connection
) -> None:
    world.gate = anyio.Event()  # handlers now wait
    first = await world.client.insert("work")
    second = await world.client.insert("work")
    assert (first.state, second.state) == (awa.JobState.RUNNING, awa.JobState.RUNNING)
    third = await world.client.insert("work")
    assert third.state is awa.JobState.AVAILABLE, "concurrency 2: no third slot"
    world.gate.set()
    await wait_for(lambda: world.dispatcher.active == 0)
    await world.runtime.shutdown()
    after = await world.client.insert("work")
    assert after.state is awa.JobState.AVAILABLE
    assert await state_of(raw, after.id) == "available"


async def test_claim_on_insert_can_be_turned_off(
    database_url: str, raw: asyncpg.Connection
) -> None:
    w = World(database_url, claim_on_insert=False)
    async with w.client, w.runtime:
        await w.settled()
        job = await w.client.insert("work")
        assert job.state is awa.JobState.AVAILABLE
        assert await state_of(raw, job.id) == "available"
    with pytest.raises(awa.ValidationError, match="claim_on_insert"):
        awa.RuntimeConfig(claim_on_insert="yes")  # type: ignore[arg-type]


async def test_a_cancelled_producer_does_not_strand_the_job_it_claimed(
    world: World, raw: asyncpg.Connection
) -> None:
    """The producer gives up while its insert waits on a lock; the insert commits later
    anyway, and the runtime runs the job it claimed (exactly once)."""
    blocker = raw
    async with blocker.transaction():
        await blocker.execute("LOCK TABLE awa.jobs IN SHARE MODE")  # holds off every INSERT
        with anyio.move_on_after(0.3) as scope:
            await world.client.insert("work", {"n": "cancelled producer"})
        assert scope.cancelled_caught
        assert world.ran == []
    await wait_for(lambda: len(world.ran) == 1)
    [(job_id, attempt, args)] = world.ran
    assert attempt == 1 and args["n"] == "cancelled producer"
    await wait_for(lambda: _is(raw, job_id, "completed"))
    await anyio.sleep(0.2)
    assert len(world.ran) == 1
    assert world.dispatcher.active == 0


async def test_a_connection_killed_mid_insert_is_a_typed_error_and_frees_the_slot(
    world: World, raw: asyncpg.Connection, database_url: str
) -> None:
    killer = await asyncpg.connect(database_url)
    try:
        async with raw.transaction():
            await raw.execute("LOCK TABLE awa.jobs IN SHARE MODE")
            async with anyio.create_task_group() as tg:
                failures: list[BaseException] = []

                async def produce() -> None:
                    try:
                        await world.client.insert("work", {"n": "killed"})
                    except DatabaseUnavailable as exc:
                        failures.append(exc)

                tg.start_soon(produce)
                await wait_for(
                    lambda: killer.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE '%awa.jobs%'"
                    )
                )
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND query LIKE '%INSERT INTO awa.jobs%'"
                )
        assert len(failures) == 1
    finally:
        await killer.close()
    assert world.dispatcher.active == 0
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0
    # The pool reconnects: the next insert is claimed as usual.
    job = await world.client.insert("work", {"n": "after"})
    assert job.state is awa.JobState.RUNNING
    await wait_for(lambda: world.ran_ids() == [job.id])


async def insert_blocked(world: World, raw: asyncpg.Connection) -> None:
    """Wait until an insert of ``world``'s client waits on ``raw``'s table lock."""
    await wait_for(
        lambda: raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO awa.jobs%'"
        )
    )


async def test_a_claim_in_flight_holds_its_slots_against_an_insert(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Concurrency 1: the dispatcher's claim of a backlog job and a producer's insert
    meet while the table is locked; only one of them may take the slot."""
    running = 0
    most = 0
    ran: list[int] = []

    async def counted(ctx: awa.JobContext) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        ran.append(ctx.job.id)
        await anyio.sleep(0.2)
        running -= 1

    w = World(database_url, counted, queues={"default": 1})
    async with w.client, w.runtime, awa.Client(database_url) as other:
        await w.settled()
        backlog = await other.insert("work", {"n": "backlog"})
        async with raw.transaction():
            # The claim reads awa.queue_pauses (the pause check): it waits; an insert that
            # does not claim never reads it.
            await raw.execute("LOCK TABLE awa.queue_pauses IN ACCESS EXCLUSIVE MODE")
            assert w.runtime.wakeups is not None
            w.runtime.wakeups.notify("default")  # the dispatcher claims, and waits
            await wait_for(
                lambda: raw.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    " AND query LIKE '%WITH head AS%'"
                )
            )
            with anyio.fail_after(5):
                new = await w.client.insert("work", {"n": "new"})
            assert new.state is awa.JobState.AVAILABLE, "the claim under way holds the slot"
            assert w.dispatcher.active == 0
        await wait_for(lambda: backlog.id in ran)
        await anyio.sleep(0.3)
        assert most == 1
        assert w.dispatcher.active <= 1


async def test_an_insert_that_outlives_the_shutdown_grace_is_given_back(
    world: World, raw: asyncpg.Connection
) -> None:
    async with anyio.create_task_group() as tg:
        produced: list[awa.Job] = []

        async def produce() -> None:
            produced.append(await world.client.insert("work", {"n": "late"}))

        async with raw.transaction():
            await raw.execute("LOCK TABLE awa.jobs IN SHARE MODE")
            tg.start_soon(produce)
            await insert_blocked(world, raw)
            tg.start_soon(world.runtime.shutdown, 0.0)
            await wait_for(lambda: world.runtime.state == "stopping")
            await anyio.sleep(0.2)  # the grace (0 s) runs out while the insert waits
        # the lock is gone: the insert commits, claimed, after the grace
    [job] = produced
    assert job.state is awa.JobState.RUNNING
    assert world.runtime.state == "stopped"
    assert world.ran == [], "past the grace, a job claimed at insert is not started"
    row = await raw.fetchrow("SELECT state::text, attempt FROM awa.jobs WHERE id = $1", job.id)
    assert row is not None and (row["state"], row["attempt"]) == ("available", 0)


async def test_an_aborted_runtime_tells_a_waiting_producer_with_a_typed_error(
    world: World, raw: asyncpg.Connection
) -> None:
    failures: list[BaseException] = []
    async with anyio.create_task_group() as tg:

        async def produce() -> None:
            try:
                await world.client.insert("work", {"n": "aborted"})
            except awa.RuntimeStateError as exc:
                failures.append(exc)

        async with raw.transaction():
            await raw.execute("LOCK TABLE awa.jobs IN SHARE MODE")
            tg.start_soon(produce)
            await insert_blocked(world, raw)
            await world.runtime.abort()
            await wait_for(lambda: failures)
    assert "may have been inserted" in str(failures[0])


# ------------------------------------------------------------------------- telemetry


@pytest.fixture
async def exporter() -> AsyncIterator[Telemetry]:
    async for handle in exporting("awa-claim-on-insert"):
        yield handle


async def scraped(handle: Telemetry, name: str, queue: str) -> float | None:
    return (await scrape(handle)).get(key(name, awa_queue=queue))


async def test_claims_at_insert_are_counted_in_a_real_scrape(
    database_url: str, exporter: Telemetry
) -> None:
    client = awa.Client(database_url, metrics=exporter.instruments)

    async def work(ctx: awa.JobContext) -> None:
        return None

    client.handler("work")(work)
    runtime = awa.Runtime(client, awa.RuntimeConfig(**QUIET), run_maintenance=False)
    async with client, runtime:
        [dispatcher] = runtime.dispatchers
        await wait_for(lambda: dispatcher._claiming == 0)
        name = "awa_jobs_claimed_on_insert_total"
        assert await scraped(exporter, name, "default") == 0  # declared from start
        for n in range(3):
            await client.insert("work", {"n": n})
        await client.insert("work", delay=60)  # scheduled: not claimed
        assert await scraped(exporter, name, "default") == 3
        assert await scraped(exporter, "awa_jobs_claimed_total", "default") == 3
