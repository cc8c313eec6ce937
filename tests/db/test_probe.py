"""The liveness probe (``awa.db.probe``) against the real server: it costs no transaction,
leaves the connection usable, and counts as activity for ``idle_session_timeout``, which is
what lets a LISTEN or presence connection be probed ten times a second for free."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from awa.db.connect import connect
from awa.db.probe import probe, probe_is_free

PROBES = 200


async def committed(raw: asyncpg.Connection) -> int:
    """Transactions committed in this database so far, as the statistics system reports
    them (flushed first: they are otherwise sent in batches)."""
    await raw.execute("SELECT pg_stat_force_next_flush()")
    await raw.execute("SELECT pg_stat_clear_snapshot()")
    value = await raw.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    assert isinstance(value, int)
    return value


async def transactions_of(raw: asyncpg.Connection, conn: asyncpg.Connection, work: object) -> int:
    """Transactions ``work`` (an async callable) commits on ``conn``, net of the counter's
    own reads on ``raw``."""
    assert callable(work)
    before = await committed(raw)
    await work()
    await conn.execute("SELECT pg_stat_force_next_flush()")
    after = await committed(raw)
    # committed() itself commits its three statements on raw; conn's flush commits one.
    return after - before - 4


async def test_probes_commit_no_transaction_where_select_1_commits_one_each(
    database_url: str, raw: asyncpg.Connection
) -> None:
    conn = await connect(database_url)
    try:

        async def probes() -> None:
            for _ in range(PROBES):
                await probe(conn)

        async def selects() -> None:
            for _ in range(PROBES):
                await conn.fetchval("SELECT 1")

        assert probe_is_free()
        # Other sessions of this database (autovacuum, busy under parallel tests) only ever
        # add to the counter: the least of three windows is the probes' own cost.
        probe_cost = min([await transactions_of(raw, conn, probes) for _ in range(3)])
        select_cost = await transactions_of(raw, conn, selects)
        assert select_cost >= PROBES, select_cost  # the counter sees what it should
        assert probe_cost <= 2, f"{PROBES} probes committed {probe_cost} transactions"
        assert await conn.fetchval("SELECT 41 + 1") == 42  # still usable
    finally:
        await conn.close()


async def test_probes_keep_an_idle_limited_session_alive_and_silence_ends_it(
    database_url: str,
) -> None:
    """idle_session_timeout 1 s: probed every 0.3 s for 2.5 s the session lives on; left
    silent, the server ends it."""
    conn = await connect(database_url, idle_limit=1.0)
    try:
        for _ in range(8):
            await anyio.sleep(0.3)
            await probe(conn)
        assert not conn.is_closed()
        assert await conn.fetchval("SELECT 1") == 1
        await anyio.sleep(2.0)  # silent for twice the idle limit
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()
