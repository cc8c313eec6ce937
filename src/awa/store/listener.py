"""LISTEN connections: a dedicated connection (outside every pool) that hands each
notification's payload to a callback; the dispatchers' wake-ups ride on it."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from awa.db.connect import CONNECT_ERRORS, connect
from awa.db.errors import translate_database_error
from awa.errors import DatabaseUnavailable
from awa.store.dedicated import DedicatedConnection

__all__ = ["Listener", "open_listener"]


class Listener(DedicatedConnection):
    """A dedicated LISTEN connection that calls ``on_payload`` for each notification.

    ``terminated`` is set when the connection dies, so the owner can fall back to polling and
    reconnect; ``close()`` is safe to call twice.
    """

    def __init__(self, conn: asyncpg.Connection, channel: str) -> None:
        super().__init__(conn)
        self.channel = channel


async def open_listener(
    url: str,
    channel: str,
    on_payload: Callable[[str], None],
    *,
    idle_limit: float | None = None,
) -> Listener:
    """LISTEN on ``channel`` over a connection of its own (``idle_limit``: see ``connect``;
    the owner must then ping it more often than that)."""
    conn = await connect(url, idle_limit=idle_limit)

    def deliver(_c: object, _pid: int, _channel: str, payload: object) -> None:
        on_payload(str(payload))

    try:
        await conn.add_listener(channel, deliver)
    except CONNECT_ERRORS as exc:
        conn.terminate()
        raise DatabaseUnavailable(f"LISTEN {channel} failed: {exc}") from exc
    except asyncpg.PostgresError as exc:  # e.g. read-only: a standby right after failover
        conn.terminate()
        raise translate_database_error(exc) from exc
    except BaseException:
        conn.terminate()
        raise
    return Listener(conn, channel)
