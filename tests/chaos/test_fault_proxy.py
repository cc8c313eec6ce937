"""The fault proxy against the real PostgreSQL: each fault does what the other suites rely on.

Why these checks: a chaos test that uses the proxy is only as good as the fault it injects. A
"blackhole" that closed a socket, or a "sever" that told the client, would make those tests
pass for the wrong reason, so each fault is checked from both ends: the client's view through
the proxy (asyncpg) and PostgreSQL's own view (``pg_stat_activity`` / ``pg_locks`` on a direct
connection).
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from support.fault_proxy import FaultProxy, ProxiedConnection

pytestmark = pytest.mark.timeout(30)

APP = "fault-proxy-test"


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[FaultProxy]:
    try:
        started = await FaultProxy.start(server_url)
    except ValueError as exc:  # AWA_DATABASE_URL on another host: the proxy is loopback-only
        pytest.skip(str(exc))
    async with started:
        yield started


@pytest.fixture
async def direct(server_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that bypasses the proxy: PostgreSQL's own view of the session."""
    conn = await asyncpg.connect(server_url, timeout=10)
    yield conn
    await conn.close(timeout=5)


@pytest.fixture
async def client(proxy: FaultProxy, server_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection through the proxy; torn down with ``terminate`` (it may be faulted)."""
    conn = await connect_via(proxy, server_url)
    yield conn
    conn.terminate()


async def connect_via(proxy: FaultProxy, server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        proxy.url(server_url), timeout=10, server_settings={"application_name": APP}
    )


def ours(proxy: FaultProxy, conn: asyncpg.Connection) -> ProxiedConnection:
    """The proxied connection carrying ``conn``, found the way chaos tests would: by pid."""
    pid = conn.get_server_pid()
    (found,) = [c for c in proxy.connections if c.backend_pid == pid]
    return found


async def eventually(probe: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll until ``probe`` holds; return how long it took. Fails after ``within`` seconds."""
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < within, f"not true within {within}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def backend_exists(direct: asyncpg.Connection, pid: int | None) -> bool:
    row = await direct.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(row)


async def test_forwards_and_learns_who_the_connection_is(
    proxy: FaultProxy, server_url: str, direct: asyncpg.Connection
) -> None:
    conn = await connect_via(proxy, server_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        pc = ours(proxy, conn)
        assert pc.application_name == APP
        assert pc.user == conn.get_settings().session_authorization
        assert pc.database == await conn.fetchval("SELECT current_database()")
        assert (pc.state, pc.cancel_request) == ("forwarding", False)
        assert pc.client_port > 0
        assert pc.bytes_up > 0
        assert pc.bytes_down > 0
        app = await direct.fetchval(
            "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pc.backend_pid
        )
        assert app == APP
    finally:
        await conn.close(timeout=5)

    async def gone() -> bool:
        return pc.state == "closed" and not await backend_exists(direct, pc.backend_pid)

    await eventually(gone, within=5)
    assert pc not in proxy.connections


async def test_blackhole_hangs_the_client_but_keeps_the_session(
    proxy: FaultProxy, server_url: str, client: asyncpg.Connection, direct: asyncpg.Connection
) -> None:
    pc = ours(proxy, client)
    proxy.blackhole(lambda c: c is pc)
    assert pc.state == "blackholed"
    with pytest.raises(TimeoutError):
        await client.fetchval("SELECT 2", timeout=1)
    assert not client.is_closed()
    assert await backend_exists(direct, pc.backend_pid)
    assert pc in proxy.connections

    other = await connect_via(proxy, server_url)  # a targeted blackhole spares the rest
    try:
        assert await other.fetchval("SELECT 3", timeout=5) == 3
    finally:
        await other.close(timeout=5)

    proxy.resume()
    assert pc.state == "forwarding"
    # The held bytes are delivered, as after a healed partition: the timed-out query runs,
    # asyncpg discards its result, and the same connection works again.
    assert await client.fetchval("SELECT 4", timeout=5) == 4


async def test_sever_ends_the_session_but_the_client_is_never_told(
    proxy: FaultProxy, client: asyncpg.Connection, direct: asyncpg.Connection
) -> None:
    key = random.randrange(1, 2**62)
    await client.execute("SELECT pg_advisory_lock($1)", key)
    pc = ours(proxy, client)

    async def lock_released() -> bool:
        held = await direct.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
            pc.backend_pid,
        )
        return bool(held == 0)

    assert not await lock_released()
    proxy.sever_server_side(lambda c: c is pc)
    assert pc.state == "severed"
    await eventually(lock_released, within=2)
    assert not await backend_exists(direct, pc.backend_pid)
    assert await direct.fetchval("SELECT pg_try_advisory_lock($1)", key)
    await direct.execute("SELECT pg_advisory_unlock($1)", key)

    assert not client.is_closed()
    with pytest.raises(TimeoutError):
        await client.fetchval("SELECT 1", timeout=0.5)
    assert not client.is_closed()
    assert pc in proxy.connections
    assert pc.state == "severed"
    # asyncpg's close() sends Terminate and waits for the server to hang up, which a
    # half-open connection never does: without a timeout it would wait forever.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.close(), timeout=0.5)


async def test_reset_fails_the_client_at_once(
    proxy: FaultProxy, client: asyncpg.Connection, direct: asyncpg.Connection
) -> None:
    pc = ours(proxy, client)

    async def sleeping() -> bool:
        state = await direct.fetchval(
            "SELECT state FROM pg_stat_activity WHERE pid = $1", pc.backend_pid
        )
        return bool(state == "active")

    reset_at: list[float] = []

    async def reset_once_sleeping() -> None:
        await eventually(sleeping, within=5)
        reset_at.append(time.monotonic())
        proxy.reset(lambda c: c is pc)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(reset_once_sleeping())
            with pytest.raises((asyncpg.ConnectionDoesNotExistError, ConnectionResetError)):
                await client.fetchval("SELECT pg_sleep(20)", timeout=10)
        assert time.monotonic() - reset_at[0] < 2
        assert client.is_closed()
        assert pc.state == "reset"
        assert pc not in proxy.connections
    finally:  # PostgreSQL only notices a dead client when the sleep ends and it writes
        await direct.execute("SELECT pg_terminate_backend($1)", pc.backend_pid)


async def test_reset_is_an_rst(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        port = writer.get_extra_info("sockname")[1]

        async def accepted() -> bool:
            return any(c.client_port == port for c in proxy.connections)

        await eventually(accepted, within=5)
        proxy.reset(lambda c: c.client_port == port)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), timeout=5)
    finally:
        writer.close()


async def test_startup_is_parsed_across_fragments(proxy: FaultProxy, server_url: str) -> None:
    parts = urlsplit(server_url)
    params = {"user": parts.username or "postgres", "application_name": "fragmented"}
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    ssl_request = struct.pack("!ii", 8, 80877103)
    startup = struct.pack("!ii", 8 + len(body), 196608) + body
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for fragment in (ssl_request[:3], ssl_request[3:]):
            writer.write(fragment)
            await writer.drain()
            await asyncio.sleep(0.05)
        if await asyncio.wait_for(reader.readexactly(1), timeout=5) != b"N":
            pytest.skip("the server accepts TLS: the proxy then learns nothing, by design")
        for cut in range(0, len(startup), 7):
            writer.write(startup[cut : cut + 7])
            await writer.drain()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reader.read(1), timeout=5)  # the server answered

        async def learned() -> bool:
            return any(c.application_name == "fragmented" for c in proxy.connections)

        await eventually(learned, within=5)
        (pc,) = [c for c in proxy.connections if c.application_name == "fragmented"]
        assert (pc.user, pc.database) == (params["user"], params["user"])
    finally:
        writer.close()


async def test_delay_adds_latency_each_way(proxy: FaultProxy, client: asyncpg.Connection) -> None:
    pc = ours(proxy, client)
    proxy.delay(0.3, lambda c: c is pc)
    started = time.monotonic()
    assert await client.fetchval("SELECT 1", timeout=10) == 1
    assert time.monotonic() - started >= 0.6 - 0.01  # 0.3 up, 0.3 down; no upper bound
    proxy.resume(lambda c: c is pc)
    assert pc.latency == 0
    assert await client.fetchval("SELECT 2", timeout=10) == 2


async def test_whole_proxy_blackhole_hangs_new_connects(
    proxy: FaultProxy, server_url: str, client: asyncpg.Connection
) -> None:
    pc = ours(proxy, client)
    proxy.blackhole()
    assert pc.state == "blackholed"
    with pytest.raises(TimeoutError):
        await asyncpg.connect(proxy.url(server_url), timeout=1)
    held = [c for c in proxy.connections if c is not pc]
    assert held
    assert all(c.state == "blackholed" for c in held)

    proxy.resume()
    fresh = await connect_via(proxy, server_url)
    try:
        assert await fresh.fetchval("SELECT 1", timeout=5) == 1
    finally:
        await fresh.close(timeout=5)
    assert await client.fetchval("SELECT 2", timeout=5) == 2


async def test_url_keeps_everything_but_the_address() -> None:
    upstream = "postgresql://alice:secret@/jobs?host=/tmp/nowhere&port=6543&sslmode=disable"
    async with await FaultProxy.start(upstream) as proxy:  # connects upstream only on accept
        assert proxy.url(upstream) == (
            f"postgresql://alice:secret@127.0.0.1:{proxy.port}/jobs?sslmode=disable"
        )
        other_db = "postgresql://alice:secret@/other?host=/tmp/nowhere&port=6543"
        assert proxy.url(other_db) == f"postgresql://alice:secret@127.0.0.1:{proxy.port}/other"
        with pytest.raises(ValueError, match="not this proxy's upstream"):
            proxy.url("postgresql://alice@localhost:6543/jobs")
        await proxy.close()  # and once more on exit: safe twice


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@db.example.com/x", "postgresql://u@10.0.0.1:5432/x", "postgresql:///x"],
)
async def test_refuses_anything_but_loopback(url: str) -> None:
    with pytest.raises(ValueError):
        await FaultProxy.start(url)
