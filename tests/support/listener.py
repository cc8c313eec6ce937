"""A connection LISTENing on awa's wake-up channels (``awa_jobs``: a queue has work;
``awa_due``: a deferred job's due time), for tests that check who is woken and when.

No wall-clock wait: ``drain`` makes one round trip on the listening connection, and the
server delivers every notification committed before that round trip ahead of its reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

CHANNELS = ("awa_jobs", "awa_due")


@dataclass
class Listener:
    """A connection LISTENing on both wake-up channels, collecting (channel, payload)."""

    conn: asyncpg.Connection
    got: asyncio.Queue[tuple[str, str]]

    async def drain(self) -> list[tuple[str, str]]:
        """Everything notified by transactions committed before this call."""
        await self.conn.fetchval("SELECT 1")  # notifications precede ReadyForQuery
        for _ in range(3):
            await asyncio.sleep(0)  # let asyncpg run the listener callbacks
        out = []
        while not self.got.empty():
            out.append(self.got.get_nowait())
        return out


@pytest.fixture
async def listener(database_url: str) -> AsyncIterator[Listener]:
    conn = await asyncpg.connect(database_url)
    got: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def deliver(_c: object, _pid: int, channel: str, payload: object) -> None:
        got.put_nowait((channel, str(payload)))  # asyncpg types the payload loosely: a str

    try:
        for channel in CHANNELS:
            await conn.add_listener(channel, deliver)
        yield Listener(conn, got)
    finally:
        await conn.close()
