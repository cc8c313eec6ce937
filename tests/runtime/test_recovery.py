"""Startup recovery (``awa.runtime.recovery``): before ``start()`` returns, the work of dead
runtimes is given back, in pages, retried per ``RecoveryPolicy``; on a real PostgreSQL.

Every wait is a poll under a generous ``fail_after``; no wall-clock duration is asserted.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
import anyio.lowlevel
import asyncpg
import pytest

import awa
import awa.maintenance
from awa.config import RecoveryPolicy
from awa.errors import StartupRecoveryError
from awa.store.presence import Presence
from support.runtime_world import RUNNING_BY, job_state, seed


async def test_ready_start_pages_through_jobs_of_dead_runtimes(
    database_url: str, raw: asyncpg.Connection
) -> None:
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at, attempt, run_lease, claimed_by, attempted_at, heartbeat_at)"
        " SELECT 'k_orphan', 'default', 'running', 2, 2, 5, now(), now(), 1, 1,"
        " 'dead-' || (g % 7), now() - interval '1 min', now() FROM generate_series(1, 1250) g"
    )
    # A hung runtime: presence held, liveness row expired. And a healthy one: both held.
    hung = await Presence.acquire(database_url, "hung")
    healthy = await Presence.acquire(database_url, "healthy")
    try:
        for who, seen in (("hung", timedelta(hours=1)), ("healthy", timedelta(0))):
            await raw.execute(
                "INSERT INTO awa.runtimes (instance_id, hostname, pid, role, queues, kinds,"
                " started_at, last_seen_at) VALUES ($1, 'h', 1, 'worker', '{}', '{}', now(),"
                " now() - $2::interval)",
                who,
                seen,
            )
        hung_job = await seed(raw, "k_stale", RUNNING_BY.format(who="hung", beat="0 s"))
        healthy_job = await seed(raw, "k_stale", RUNNING_BY.format(who="healthy", beat="0 s"))
        client = awa.Client(database_url)
        config = awa.RuntimeConfig(
            queues={}, startup_recovery=RecoveryPolicy(page_size=100, delay=0.05)
        )
        async with client, awa.Runtime(client, config, run_maintenance=False) as runtime:
            assert runtime.recovery is not None
            assert runtime.recovery.requeued == 1251
            assert runtime.recovery.pages >= 13  # 1,250 orphans in pages of 100
            assert runtime.recovery.attempts == 1
            states = {
                state: count
                for state, count in await raw.fetch(
                    "SELECT state::text, count(*) FROM awa.jobs GROUP BY state"
                )
            }
            assert states == {"available": 1251, "running": 1}
            assert await job_state(raw, hung_job) == "available"
            assert await job_state(raw, healthy_job) == "running"
            errors = await raw.fetchval("SELECT errors FROM awa.jobs WHERE id = $1", hung_job)
            assert "liveness expired" in errors
    finally:
        await hung.close()
        await healthy.close()


async def test_ready_start_cancels_orphans_an_operator_asked_to_cancel(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """A dead runtime's attempts with a pending cancel request end cancelled, not re-run,
    and a page made only of them does not stop recovery's paging."""
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at, attempt, run_lease, claimed_by, attempted_at, heartbeat_at,"
        " cancel_requested, cancel_reason)"
        " SELECT 'k_orphan', 'default', 'running', 2, 2, 5, now(), now(), 1, 1, 'dead',"
        " now() - interval '1 min', now(), true, 'operator said stop'"
        " FROM generate_series(1, 250)"
    )
    client = awa.Client(database_url)
    config = awa.RuntimeConfig(
        queues={}, startup_recovery=RecoveryPolicy(page_size=100, delay=0.05)
    )
    async with client, awa.Runtime(client, config, run_maintenance=False) as runtime:
        assert runtime.recovery is not None
        assert (runtime.recovery.cancelled, runtime.recovery.requeued) == (250, 0)
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0
    rows = await raw.fetch("SELECT state::text, errors FROM awa.jobs_done")
    assert {r["state"] for r in rows} == {"cancelled"} and len(rows) == 250
    assert all("operator said stop" in r["errors"] for r in rows)


async def _hold_jobs_lock(url: str, release: anyio.Event, locked: anyio.Event) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE awa.jobs IN ACCESS EXCLUSIVE MODE")
            locked.set()
            await release.wait()
    finally:
        await conn.close()


async def test_ready_start_recovery_raises_after_exhausting_retries(database_url: str) -> None:
    release, locked = anyio.Event(), anyio.Event()
    client = awa.Client(database_url)
    policy = RecoveryPolicy(attempts=3, delay=0.05, timeout=0.3)
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(_hold_jobs_lock, database_url, release, locked)
        await locked.wait()
        runtime = awa.Runtime(
            client, awa.RuntimeConfig(queues={}, startup_recovery=policy), run_maintenance=False
        )
        with pytest.raises(StartupRecoveryError) as info:
            await runtime.start()
        assert info.value.attempts == 3
        assert runtime.state == "stopped"
        release.set()
    # Nothing was left behind: the presence lock and the pool are gone.
    conn = await asyncpg.connect(database_url)
    try:
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert held == 0
    finally:
        await conn.close()


async def test_ready_start_recovery_is_retried_until_it_succeeds(database_url: str) -> None:
    release, locked = anyio.Event(), anyio.Event()
    client = awa.Client(database_url)
    policy = RecoveryPolicy(attempts=20, delay=0.05, timeout=0.3)
    runtime = awa.Runtime(
        client, awa.RuntimeConfig(queues={}, startup_recovery=policy), run_maintenance=False
    )
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(_hold_jobs_lock, database_url, release, locked)
        await locked.wait()

        async def release_later() -> None:
            await anyio.sleep(0.8)
            release.set()

        tg.start_soon(release_later)
        await runtime.start()
        assert runtime.recovery is not None and runtime.recovery.attempts > 1
        await runtime.shutdown()
