"""A runtime's presence lock: the positive evidence that the process holding a running job
is alive. Kept apart from the maintenance store because the worker side owns it."""

from __future__ import annotations

from awa.db.connect import CONNECT_ERRORS, connect
from awa.errors import DatabaseUnavailable
from awa.store.dedicated import DedicatedConnection

__all__ = ["PRESENCE_LOCK_CLASS", "Presence"]

#: First key of every runtime's presence lock (pg_advisory_lock(int4, int4)); the second
#: key is hashtext(instance_id). "awa" in ASCII.
PRESENCE_LOCK_CLASS = 0x617761


class Presence(DedicatedConnection):
    """A runtime's presence lock: ``pg_advisory_lock(PRESENCE_LOCK_CLASS,
    hashtext(instance_id))`` held on a dedicated connection for the runtime's whole life.
    When the process dies, the lock vanishes with its session, which is how
    ``rescue_stale_heartbeats`` recognises a crashed holder within about a second."""

    @classmethod
    async def acquire(cls, url: str, instance_id: str) -> Presence:
        conn = await connect(url)
        try:
            await conn.execute(
                "SELECT pg_advisory_lock($1, hashtext($2))", PRESENCE_LOCK_CLASS, instance_id
            )
        except CONNECT_ERRORS as exc:
            conn.terminate()
            raise DatabaseUnavailable(f"presence lock failed: {exc}") from exc
        return cls(conn)
