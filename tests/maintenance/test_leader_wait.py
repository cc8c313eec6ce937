"""Followers wait for the leadership lock instead of polling it (ADR 036), on a real
PostgreSQL: the waiter is seen in ``pg_locks``, it issues no statement while it waits, it
wins the moment the leader's session ends (with an election interval no poller would beat),
a wait that runs out is renewed, a stopped candidate leaves the queue, and a candidate whose
client vanished is dropped from the queue by the server.

Every wait is a poll under a generous ``fail_after``; no wall-clock duration is asserted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.errors import DatabaseUnavailable
from awa.maintenance import leader as leader_module
from awa.store.leadership import LeaderConnection
from support.chaos import wait_for
from support.maintenance import LOCK_CLASSID, LOCK_OBJID, lock_holders, maint_config

#: A follower that polled would ask again only this much later: far beyond every
#: ``wait_for`` below, so only a waiting follower can pass them.
POLL_NEVER = 600.0

WAITERS = """
SELECT l.pid, a.query_start, a.wait_event_type, a.wait_event
  FROM pg_locks l JOIN pg_stat_activity a USING (pid)
 WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1
   AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def waiters(raw: asyncpg.Connection) -> list[tuple[int, datetime]]:
    """(pid, query_start) of every backend waiting for the leadership lock here."""
    rows = await raw.fetch(WAITERS, LOCK_CLASSID, LOCK_OBJID)
    assert all((r["wait_event_type"], r["wait_event"]) == ("Lock", "advisory") for r in rows)
    return [(int(r["pid"]), r["query_start"]) for r in rows]


@asynccontextmanager
async def candidates(
    url: str, count: int, config: MaintenanceConfig
) -> AsyncIterator[tuple[AsyncExitStack, list[awa.Runtime]]]:
    """``count`` maintenance-only runtimes, started one after the other (the first leads)."""
    async with AsyncExitStack() as stack:
        runtimes = []
        for _ in range(count):
            client = await stack.enter_async_context(awa.Client(url))
            runtime = awa.Runtime(
                client, awa.RuntimeConfig(queues={}), role="maintenance", maintenance=config
            )
            await runtime.start()
            stack.push_async_callback(runtime.shutdown)
            runtimes.append(runtime)
            if len(runtimes) == 1:
                await wait_for(lambda: leaders(runtimes), 30, what="a first leader")
        yield stack, runtimes


def leaders(runtimes: Sequence[awa.Runtime]) -> list[awa.Runtime]:
    return [r for r in runtimes if r.leader is not None and r.leader.is_leader]


def terms(runtimes: Sequence[awa.Runtime]) -> int:
    return sum(r.leader.terms for r in runtimes if r.leader is not None)


async def test_a_follower_waits_and_wins_the_moment_the_leader_session_ends(
    database_url: str, raw: asyncpg.Connection
) -> None:
    config = maint_config(election_interval=POLL_NEVER)
    async with candidates(database_url, 2, config) as (_, runtimes):
        leader, follower = runtimes
        assert leaders(runtimes) == [leader]
        ((waiter, started),) = await wait_for(lambda: waiters(raw), 30, what="a waiter")
        # While it waits, the follower sends nothing: the same statement, still waiting.
        await anyio.sleep(1.0)
        assert await waiters(raw) == [(waiter, started)]
        assert terms(runtimes) == 1

        # The leader's process dies (its session ends; PostgreSQL frees the lock).
        (holder,) = await lock_holders(raw)
        assert await raw.fetchval("SELECT pg_terminate_backend($1)", holder)

        def follower_leads() -> bool:
            return leaders(runtimes) == [follower] and terms(runtimes) == 2

        await wait_for(follower_leads, 30, what="the waiting follower to lead")
        assert await wait_for(lambda: lock_holders(raw)) == [waiter]


async def test_a_wait_that_runs_out_is_renewed(
    database_url: str, raw: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leader_module, "ELECTION_WAIT", 0.3)
    async with candidates(database_url, 2, maint_config()) as (_, runtimes):
        seen: set[tuple[int, datetime]] = set()

        async def renewed() -> bool:
            seen.update(await waiters(raw))
            return len(seen) >= 3

        await wait_for(renewed, 30, interval=0.05, what="three successive election waits")
        assert len({pid for pid, _ in seen}) == 1  # the same session asked again
        assert terms(runtimes) == 1  # and nothing churned
        assert len(leaders(runtimes)) == 1


async def test_a_cancelled_wait_is_renewed_on_the_same_session(
    database_url: str, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement_timeout on the role or database, or pg_cancel_backend, ends a wait with
    query_canceled: the follower waits again on the same session, as after its own lock
    timeout, rather than treating it as a failure."""
    config = maint_config(election_interval=POLL_NEVER)
    async with candidates(database_url, 2, config) as (_, runtimes):
        ((waiter, started),) = await wait_for(lambda: waiters(raw), 30, what="a waiter")
        assert await raw.fetchval("SELECT pg_cancel_backend($1)", waiter)

        async def waiting_again() -> bool:
            now = await waiters(raw)
            return len(now) == 1 and now[0][0] == waiter and now[0][1] > started

        await wait_for(waiting_again, 30, what="the same session to wait again")
        assert terms(runtimes) == 1
    assert not [r for r in caplog.records if "unexpectedly" in r.getMessage()]


async def test_a_stopped_candidate_leaves_the_queue_and_the_leader_keeps_leading(
    database_url: str, raw: asyncpg.Connection
) -> None:
    config = maint_config(election_interval=POLL_NEVER)
    async with candidates(database_url, 2, config) as (_, runtimes):
        leader, follower = runtimes
        ((waiter, _),) = await wait_for(lambda: waiters(raw), 30, what="a waiter")
        with anyio.fail_after(30):
            await follower.shutdown()

        async def gone() -> bool:
            return await session_count(raw, waiter) == 0

        await wait_for(gone, 30, what="the stopped candidate's session to end")
        assert await waiters(raw) == []
        assert leaders(runtimes) == [leader]
        assert terms(runtimes) == 1


async def test_a_vanished_candidate_is_dropped_from_the_queue_by_the_server(
    database_url: str, raw: asyncpg.Connection
) -> None:
    holder = await LeaderConnection.open(database_url)
    candidate = await LeaderConnection.open(database_url, wait=POLL_NEVER)
    try:
        assert await holder.try_acquire()
        outcome: list[BaseException] = []

        async def campaign() -> None:
            try:
                await candidate.wait_acquire(POLL_NEVER)
            except DatabaseUnavailable as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(campaign)
            ((waiter, _),) = await wait_for(lambda: waiters(raw), 30, what="a waiter")
            # The client goes away without a word (no cancel request, no Terminate): only
            # the server's client check can end a backend that sits in a lock wait.
            candidate.terminate()
        assert len(outcome) == 1

        async def gone() -> bool:
            return await session_count(raw, waiter) == 0

        await wait_for(gone, 20, what="the server to end the vanished candidate's session")
        # Had it stayed queued, it would have been granted the lock on release.
        await holder.release()
        assert await wait_for(lambda: no_holder(raw), 10, what="the lock to be free")
    finally:
        await candidate.close()
        await holder.close()


async def no_holder(raw: asyncpg.Connection) -> bool:
    return await lock_holders(raw) == []


async def session_count(raw: asyncpg.Connection, pid: int) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid))
