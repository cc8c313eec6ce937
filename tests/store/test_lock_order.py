"""Multi-row job writers lock their rows in one global order (by id), so they cannot deadlock.

Heartbeats, the completion flush (complete, finalize, reschedule), the callback park and
rescue each write a batch of job rows in one statement (or a transaction whose first
statement locks the whole batch). Listed in opposite orders, two such batches used to be
able to each hold a row the other needed: PostgreSQL then aborts one as a deadlock, a retry
at best and a lost flush at worst. Each statement now locks its rows in id order first.

The interleaving is forced, not hoped for: a third transaction holds the middle row, writer
A (ids ascending) queues behind it, writer B (ids descending) starts, and only then is the
middle row let go. A control writer that locks in batch order shows the harness does
produce the deadlock (the old statements' lock order was their plan's: batch order under a
nested loop over the batch, index order otherwise). A stress run then races two heartbeats
in opposite orders many times, and EXPLAIN shows the lock step uses the primary key. Real
PostgreSQL throughout.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import anyio
import asyncpg
import pytest

import awa
from awa.clock import utcnow
from awa.db.queries import load_queries, sql_text
from awa.errors import DatabaseConflict
from awa.model import hash_callback_token
from awa.store import FinishedAttempt, Rescheduled, Store
from awa.store.callbacks import ParkedAttempt

Jobs = list[awa.Job]
Writer = Callable[[Store, Jobs], Awaitable[object]]


#: Running jobs of other runtimes, in another queue.
BACKGROUND = """
INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts, run_at,
                      created_at, attempt, run_lease, attempted_at, heartbeat_at, claimed_by)
SELECT 'x', 'busy', 'running', 2, 2, 3, now(), now(), 1, 1, now(), now(), 'other-' || (g % 50)
  FROM generate_series(1, 5000) AS g
"""


@pytest.fixture
async def mstore(database_url: str) -> AsyncIterator[Store]:
    s = await Store.open(database_url, min_size=2, max_size=6)
    try:
        yield s
    finally:
        await s.close()


async def running(store: Store, count: int) -> Jobs:
    """``count`` jobs claimed by one runtime, among thousands other runtimes hold (so each
    statement gets the plan a busy table gets, not a tiny table's sequential scan)."""
    async with store.db.acquire() as c:
        if not await c.fetchval("SELECT EXISTS (SELECT 1 FROM awa.jobs WHERE queue = 'busy')"):
            await c.execute(BACKGROUND)
            await c.execute("ANALYZE awa.jobs")
    for _ in range(count):
        await store.jobs.insert_job(awa.InsertParams("a", max_attempts=5))
    jobs = await store.jobs.claim_batch("default", ["a"], count, "holder")
    assert len(jobs) == count
    return sorted(jobs, key=lambda j: j.id)


async def heartbeat(store: Store, jobs: Jobs) -> object:
    return await store.jobs.heartbeat(
        [j.id for j in jobs], [j.run_lease for j in jobs], [None] * len(jobs)
    )


async def complete(store: Store, jobs: Jobs) -> object:
    return await store.jobs.complete_batch(
        [j.id for j in jobs], [j.run_lease for j in jobs], [None] * len(jobs)
    )


async def finalize(store: Store, jobs: Jobs) -> object:
    items = [FinishedAttempt(j.id, j.run_lease, awa.JobState.FAILED, None) for j in jobs]
    return await store.jobs.finalize_batch(items)


async def reschedule(store: Store, jobs: Jobs) -> object:
    at = utcnow() + timedelta(hours=1)
    items = [Rescheduled(j.id, j.run_lease, awa.JobState.RETRYABLE, at, None, False) for j in jobs]
    return await store.jobs.reschedule_batch(items)


async def rescue(store: Store, jobs: Jobs) -> object:
    return await store.recovery.rescue(
        [(j.id, j.run_lease) for j in jobs],
        from_states=["running"],
        reason="test",
        retry_base_delay=0.0,
    )


async def blocked(raw: asyncpg.Connection) -> int:
    value = await raw.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    return int(value)


async def wait_blocked(raw: asyncpg.Connection, count: int) -> None:
    """Until ``count`` backends wait on a lock (polled: the waits are in another process)."""
    with anyio.fail_after(10):
        while True:
            if await blocked(raw) >= count:
                return
            await anyio.sleep(0.01)


async def race(
    database_url: str,
    raw: asyncpg.Connection,
    jobs: Jobs,
    first: Callable[[Jobs], Awaitable[object]],
    second: Callable[[Jobs], Awaitable[object]],
) -> list[BaseException]:
    """Run ``first(jobs ascending)`` and ``second(jobs descending)`` with the middle row held
    until both wait on a lock; return what each raised."""
    middle = jobs[len(jobs) // 2].id
    holder = await asyncpg.connect(database_url)
    errors: list[BaseException] = []

    async def run(write: Callable[[], Awaitable[object]]) -> None:
        try:
            await write()
        except (DatabaseConflict, asyncpg.exceptions.DeadlockDetectedError) as exc:
            errors.append(exc)

    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM awa.jobs WHERE id = $1 FOR UPDATE", middle)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, lambda: first(jobs))
            await wait_blocked(raw, 1)
            tg.start_soon(run, lambda: second(list(reversed(jobs))))
            await wait_blocked(raw, 2)
            await tx.commit()
    finally:
        await holder.close()
    return errors


def bound(writer: Writer, store: Store) -> Callable[[Jobs], Awaitable[object]]:
    return lambda jobs: writer(store, jobs)


async def test_the_harness_deadlocks_writers_that_lock_in_batch_order(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    """Control: a writer that locks its rows in the order its batch lists them (what the
    old statements did whenever their plan was a nested loop over the batch) deadlocks
    here, so the other tests' silence means something."""
    jobs = await running(mstore, 6)

    async def in_batch_order(batch: Jobs) -> object:
        async with mstore.db.acquire() as c, c.transaction():
            for j in batch:
                await c.execute("UPDATE awa.jobs SET heartbeat_at = now() WHERE id = $1", j.id)
        return None

    errors = await race(database_url, raw, jobs, in_batch_order, in_batch_order)
    assert len(errors) == 1
    assert "deadlock" in str(errors[0])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (heartbeat, heartbeat),
        (complete, heartbeat),
        (heartbeat, complete),
        (finalize, heartbeat),
        (reschedule, heartbeat),
        (heartbeat, rescue),
        (rescue, complete),
        (complete, finalize),
    ],
    ids=lambda w: w.__name__,
)
async def test_two_writers_in_opposite_orders_do_not_deadlock(
    database_url: str,
    mstore: Store,
    raw: asyncpg.Connection,
    first: Writer,
    second: Writer,
) -> None:
    jobs = await running(mstore, 6)
    errors = await race(database_url, raw, jobs, bound(first, mstore), bound(second, mstore))
    assert errors == []


async def test_park_and_heartbeat_in_opposite_orders_do_not_deadlock(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    """The park locks callbacks, then jobs (each in id order); the heartbeat locks jobs."""
    callbacks = mstore.callbacks
    for park_first in (True, False):
        jobs = await running(mstore, 6)
        items = {}
        for j in jobs:
            callback_id = uuid.uuid4()
            hashed = hash_callback_token("t")
            assert await callbacks.register_callback(
                j.id, j.run_lease, callback_id, hashed, 60, False
            )
            items[j.id] = ParkedAttempt(j.id, j.run_lease, str(callback_id))

        async def parking(batch: Jobs, items: dict[int, ParkedAttempt] = items) -> object:
            return await callbacks.park_jobs([items[j.id] for j in batch])

        beating = bound(heartbeat, mstore)
        pair = (parking, beating) if park_first else (beating, parking)
        assert await race(database_url, raw, jobs, *pair) == []


async def test_opposite_heartbeats_raced_many_times_never_deadlock(
    mstore: Store,
) -> None:
    jobs = await running(mstore, 200)
    conflicts = 0

    async def beat(batch: Jobs) -> None:
        nonlocal conflicts
        try:
            await heartbeat(mstore, batch)
        except DatabaseConflict:
            conflicts += 1

    for _ in range(40):
        async with anyio.create_task_group() as tg:
            tg.start_soon(beat, jobs)
            tg.start_soon(beat, list(reversed(jobs)))
    assert conflicts == 0


async def test_the_lock_step_uses_the_primary_key(mstore: Store, raw: asyncpg.Connection) -> None:
    """On a table of realistic size the batch lock is an index scan of the primary key."""
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) SELECT 'x', 'bulk', 'available', 2, 2, 3, now(), now()"
        " FROM generate_series(1, 20000)"
    )
    await raw.execute("ANALYZE awa.jobs")
    rows = await raw.fetch("SELECT id FROM awa.jobs ORDER BY id DESC LIMIT 5")
    ids = [int(r["id"]) for r in rows]
    leases, nulls = [1] * len(ids), [None] * len(ids)
    statements: dict[str, list[object]] = {
        "heartbeat": [ids, leases, None, None],
        "complete_batch": [ids, leases, nulls, None, None],
        "finalize_cancel_requested": [ids, leases, None, None, None],
    }
    for name, args in statements.items():
        plan = "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN {sql_text(name)}", *args))
        assert "jobs_pkey" in plan, plan
        assert "Seq Scan on jobs " not in plan, plan
        # The lock step is evaluated up front, before any row is read (see jobs.sql).
        assert "One-Time Filter" in plan, plan


async def test_every_batch_writer_locks_its_batch_up_front(raw: asyncpg.Connection) -> None:
    """Each statement with a lock step gates on it (so it runs whole, even when no row
    qualifies); the plans are checked on an empty table, the case a lazy join would skip."""
    queries = load_queries()
    gated = [q for q in queries.values() if "FROM locked) >= 0" in q.sql]
    assert {q.name for q in gated} >= {
        "heartbeat",
        "complete_batch",
        "finalize_batch",
        "reschedule_batch",
        "finalize_cancel_requested",
        "park_jobs",
        "callback_complete_jobs",
        "callback_fail_jobs",
        "callback_retry_jobs",
        "callback_resume_jobs",
    }
    for q in gated:
        # Every parameter is cast in the statement, so NULLs will do for a plan.
        count = max(int(n) for n in re.findall(r"\$(\d+)", q.sql))
        plan = "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN {q.sql}", *[None] * count))
        assert "One-Time Filter" in plan, (q.name, plan)
