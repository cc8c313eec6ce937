"""Chaos: the application exhausts its client's connection pool (holds every connection)
while a worker dies holding jobs and scheduled jobs fall due.

Claim: maintenance runs on connections of its own, so it keeps progressing: the scheduled
jobs are promoted and the dead worker's jobs are rescued while the application still holds
every pooled connection (and, as a check that the pool really was exhausted, nothing is
claimed meanwhile). Once the application lets go, every job completes.

Short form: 3 orphans, 5 scheduled jobs. ``AWA_CHAOS_LONG=1``: 50 orphans, 200 scheduled
jobs, and the pool held for five promote intervals.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import asyncpg
import pytest

import awa
from support.chaos import (
    KIND,
    QUEUE,
    Crew,
    WorkerFleet,
    assert_nothing_lost_or_redone,
    audit,
    chaos_done,
    create_side_table,
    emit,
    scale,
    settle,
    wait_for,
)

ORPHANS = scale(3, 50)
SCHEDULED = scale(5, 200)
HOLD_FOR_INTERVALS = scale(0, 5)  # promote_scheduled intervals to keep holding after that
ORPHAN_QUEUE = "orphans"
POOL = 4


#: Where promoted or rescued jobs may be by the time we look: the runtime has its own pool,
#: so it claims and completes them even while the application's pool is exhausted.
PROMOTED = {"available", "running", "completed"}


async def test_exhausted_application_pool_does_not_stop_maintenance(
    database_url: str, raw: asyncpg.Connection, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await create_side_table(raw)
    async with WorkerFleet(database_url, tmp_path) as fleet:
        victim = await fleet.spawn(queues={ORPHAN_QUEUE: ORPHANS}, maintenance=False)
        producer = awa.Client(database_url)  # the outside world: its own pool
        await producer.connect()
        try:
            orphans = [
                (await producer.insert(KIND, {"hang_first": True}, queue=ORPHAN_QUEUE)).id
                for _ in range(ORPHANS)
            ]
            await wait_for(
                lambda: held_by(raw, orphans, victim.instance_id),
                30,
                what="the victim to run every orphan-to-be",
            )
            # Only now the process under test: it serves the orphans' queue too, for later.
            async with Crew(
                database_url, 1, queues={QUEUE: 4, ORPHAN_QUEUE: 4}, pool_size=POOL
            ) as crew:
                await settle(crew, crew.leaders, 15, what="a leader")
                assert crew.leaders() == crew.runtimes  # maintenance is in the starved process
                leader = crew.runtimes[0].leader
                assert leader is not None
                pool = crew.clients[0].store.db.pool
                held = []
                with anyio.fail_after(15):
                    for _ in range(pool.get_max_size()):
                        held.append(await pool.acquire())
                exhausted_at = time.monotonic()
                try:
                    scheduled = await producer.insert_many(
                        [
                            producer.params(KIND, {"n": i}, queue=QUEUE, delay=1.0)
                            for i in range(SCHEDULED)
                        ]
                    )
                    await victim.kill9()
                    await settle(
                        crew,
                        lambda: states_are(raw, scheduled, PROMOTED),
                        30,
                        what="scheduled jobs to be promoted",
                    )
                    promoted_s = time.monotonic() - exhausted_at
                    await settle(crew, lambda: rescued(raw, orphans), 30, what="the rescue")
                    rescued_s = time.monotonic() - exhausted_at
                    interval = leader.stats["promote_scheduled"].branch.interval
                    await anyio.sleep(HOLD_FOR_INTERVALS * interval)
                    # The application's pool is still exhausted, yet the runtime (its own
                    # pool since session 2) keeps claiming and completing.
                    assert await states_are(raw, [*scheduled, *orphans], PROMOTED)
                    assert len(held) == pool.get_max_size()
                finally:
                    for conn in held:
                        await pool.release(conn)
                released_at = time.monotonic()
                await settle(crew, lambda: no_live_jobs(raw), 60, what="every job to finish")
                drained_s = time.monotonic() - released_at
        finally:
            await producer.close()

    result = await audit(raw)
    emit(
        request,
        "application pool exhausted",
        inserted=ORPHANS + SCHEDULED,
        completed=result.completed,
        lost=result.lost,
        duplicated_after_completion=result.after_completion,
        pool_held=POOL,
        promoted_while_exhausted=SCHEDULED,
        rescued_while_exhausted=ORPHANS,
        promoted_s=promoted_s,
        rescued_s=rescued_s,
        recover_s=drained_s,
    )
    assert_nothing_lost_or_redone(result, ORPHANS + SCHEDULED)
    # Each orphan ran twice (the hung first attempt, then the rescued one); the rest once.
    assert result.executions == 2 * ORPHANS + SCHEDULED


async def held_by(raw: asyncpg.Connection, ids: list[int], instance_id: str | None) -> bool:
    count = await raw.fetchval(
        "SELECT count(*) FROM awa.jobs WHERE id = ANY($1::bigint[]) AND state = 'running'"
        " AND claimed_by = $2",
        ids,
        instance_id,
    )
    return int(count) == len(ids)


async def states_are(raw: asyncpg.Connection, ids: list[int], states: set[str]) -> bool:
    rows = await raw.fetch(
        "SELECT state::text AS state FROM awa.all_jobs WHERE id = ANY($1::bigint[])", ids
    )
    return len(rows) == len(ids) and all(r["state"] in states for r in rows)


async def rescued(raw: asyncpg.Connection, ids: list[int]) -> bool:
    """Every orphan was rescued (a rescue record) and is back in line or done since."""
    count = await raw.fetchval(
        "SELECT count(*) FROM awa.all_jobs WHERE id = ANY($1::bigint[])"
        " AND state IN ('available', 'running', 'completed')"
        ' AND errors @> \'[{"kind": "rescued"}]\'',
        ids,
    )
    return int(count) == len(ids)


async def no_live_jobs(raw: asyncpg.Connection) -> bool:
    return await chaos_done(raw) == 0


async def test_producer_on_an_exhausted_pool_gets_a_typed_error_not_a_hang(
    database_url: str,
) -> None:
    """While the application holds every pooled connection, an insert waits at most the
    acquire timeout and raises ``PoolExhausted`` (a ``DatabaseUnavailable``: retryable);
    nothing is written, and once a connection is free the same call succeeds."""
    async with awa.Client(database_url, pool_size=2, pool_acquire_timeout=0.3) as client:
        held = [await client.store.db.pool.acquire() for _ in range(2)]
        try:
            with anyio.fail_after(30):  # a hang fails here, not in CI's global timeout
                with pytest.raises(awa.PoolExhausted, match="pool size 2") as caught:
                    await client.insert("pool_probe", {"n": 1})
                with pytest.raises(awa.DatabaseUnavailable):
                    await client.insert_many([client.params("pool_probe", {"n": 2})])
                with pytest.raises(awa.PoolExhausted):  # reads too, not only writes
                    await client.get_job(1)
                with pytest.raises(awa.PoolExhausted):
                    await client.list_schedules()
            assert isinstance(caught.value, awa.DatabaseUnavailable)
            count = await held[0].fetchval(
                "SELECT count(*) FROM awa.all_jobs WHERE kind = 'pool_probe'"
            )
            assert count == 0
        finally:
            for conn in held:
                await client.store.db.pool.release(conn)
        job = await client.insert("pool_probe", {"n": 3})
        assert (await client.get_job(job.id)).args == {"n": 3}
