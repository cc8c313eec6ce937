"""Which statements commit asynchronously (ADR 020, ADR 040), checked on the real server.

A statement that calls ``set_config('synchronous_commit', 'off', true)`` changes the
setting for its own transaction only; ``SHOW`` inside an explicit transaction sees it, and
the session's own value is back after the commit. Run each query the way the store does,
inside a transaction here so the setting can be observed before it ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from awa.db.queries import sql_text
from awa.model import InsertParams
from awa.store import Store


async def setting_after(raw: asyncpg.Connection, query: str, *args: object) -> str:
    async with raw.transaction():
        await raw.fetch(sql_text(query), *args)
        return str(await raw.fetchval("SHOW synchronous_commit"))


@pytest.fixture
async def session_on(raw: asyncpg.Connection) -> asyncpg.Connection:
    """The test server runs with synchronous_commit off; a user's server has it on."""
    await raw.execute("SET synchronous_commit = on")
    return raw


async def test_a_claim_commits_asynchronously(store: Store, session_on: asyncpg.Connection) -> None:
    """A claim lost in a crash leaves its job available; its lease is never handed out
    again (ADR 040; the crash itself: tests/chaos/test_claim_crash.py)."""
    await store.jobs.insert_job(InsertParams("k", {}))
    claim = ("default", ["k"], 10, "inst", None)
    assert await setting_after(session_on, "claim_batch", *claim) == "off"
    assert await session_on.fetchval("SELECT state FROM awa.jobs") == "running"


async def test_a_claim_sets_the_setting_for_its_own_transaction_only(
    store: Store, session_on: asyncpg.Connection
) -> None:
    await store.jobs.insert_job(InsertParams("k", {}))
    await session_on.fetch(sql_text("claim_batch"), "default", ["k"], 10, "inst", None)
    assert await session_on.fetchval("SELECT state FROM awa.jobs") == "running"
    assert await session_on.fetchval("SHOW synchronous_commit") == "on"


async def one_due_job(store: Store, raw: asyncpg.Connection) -> None:
    """A scheduled job whose run_at is already past: the next promotion takes it."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.jobs.insert_many([InsertParams("k", run_at=past + timedelta(hours=1))])
    await raw.execute("UPDATE awa.jobs SET run_at = $1", past)


async def test_a_promotion_sets_the_setting_for_its_own_transaction_only(
    store: Store, session_on: asyncpg.Connection
) -> None:
    await one_due_job(store, session_on)
    await session_on.fetch(sql_text("promote_due"), 10, None, None)
    assert await session_on.fetchval("SHOW synchronous_commit") == "on"


async def test_a_promotion_commits_asynchronously(
    store: Store, session_on: asyncpg.Connection
) -> None:
    await one_due_job(store, session_on)
    assert await setting_after(session_on, "promote_due", 10, None, None) == "off"
    assert await session_on.fetchval("SELECT state FROM awa.jobs") == "available"


async def test_a_completion_stays_durable(store: Store, session_on: asyncpg.Connection) -> None:
    """A completion records the handler's result: losing it would run the job twice."""
    job = await store.jobs.insert_job(InsertParams("k", {}))
    (claimed,) = await store.jobs.claim_batch("default", ["k"], 1, "inst")
    args = ([job.id], [claimed.run_lease], ["null"], None, [None])
    assert await setting_after(session_on, "complete_batch", *args) == "on"
