"""A runtime's presence lock: one half of the evidence that the process holding a running
job is alive (the other half is its liveness beat; ADR 014).

The lock is ``pg_advisory_lock(PRESENCE_LOCK_CLASS, hashtext(instance_id))`` held on a
dedicated connection for the runtime's whole life. When the process dies, the lock vanishes
with its session. The connection is otherwise idle, so the runtime checks it actively
(``check``), and the server ends the session once it sits idle past ``idle_limit``: a
runtime that vanished without a word (host crash, partition, a NAT answering keepalives)
loses the lock within that bound instead of hours later.
"""

from __future__ import annotations

import anyio
import asyncpg

from awa.db.connect import CONNECT_ERRORS, connect
from awa.db.errors import translate_database_error
from awa.db.queries import paired_queries
from awa.errors import DatabaseUnavailable, RuntimeStateError
from awa.store.dedicated import DedicatedConnection

__all__ = ["PRESENCE_IDLE_LIMIT", "PRESENCE_LOCK_CLASS", "Presence"]

#: First key of every runtime's presence lock (pg_advisory_lock(int4, int4)); the second
#: key is hashtext(instance_id). "awa" in ASCII.
PRESENCE_LOCK_CLASS = 0x617761
#: The server ends a presence session idle longer than this (the runtime checks it every
#: second). Generous on purpose: a handler blocking the event loop for a few seconds must
#: not cost its runtime the lock.
PRESENCE_IDLE_LIMIT = 10.0

_QUERIES = paired_queries("presence")


class Presence(DedicatedConnection):
    @classmethod
    async def acquire(
        cls,
        url: str,
        instance_id: str,
        *,
        wait: float = 1.0,
        idle_limit: float | None = PRESENCE_IDLE_LIMIT,
    ) -> Presence:
        """Take the lock, trying for up to ``wait`` seconds.

        ``RuntimeStateError`` when another session still holds it after ``wait``: another
        live runtime uses this instance id (a colliding ``instance_id``), or our own
        previous presence session has not been ended by the server yet (the caller
        re-acquiring after a fault retries)."""
        conn = await connect(url, idle_limit=idle_limit)
        try:
            with anyio.fail_after(wait + 5.0):
                deadline = anyio.current_time() + wait
                while not await conn.fetchval(
                    _QUERIES["presence_try_lock"].sql, PRESENCE_LOCK_CLASS, instance_id
                ):
                    if anyio.current_time() >= deadline:
                        conn.terminate()
                        raise RuntimeStateError(
                            f"instance id {instance_id!r} is in use: another live runtime "
                            "holds its presence lock (give each runtime its own instance_id)"
                        )
                    await anyio.sleep(0.1)
        except CONNECT_ERRORS as exc:  # TimeoutError included
            conn.terminate()
            raise DatabaseUnavailable(f"presence lock failed: {exc}") from exc
        except asyncpg.PostgresError as exc:
            conn.terminate()
            raise translate_database_error(exc) from exc
        except BaseException:  # cancelled, or refused: never leak a session holding the lock
            conn.terminate()
            raise
        return cls(conn)
