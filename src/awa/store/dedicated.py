"""A connection of its own, outside every pool, for work that must outlive any one query:
LISTEN, the leadership lock, a runtime's presence lock.

One place knows how such a connection reports its death (``terminated``, set by the driver's
termination callback or by ``close()``) and how to close it without raising when the server
is already gone.
"""

from __future__ import annotations

import anyio
import asyncpg

from awa.db.connect import CONNECT_ERRORS
from awa.db.probe import probe
from awa.errors import DatabaseUnavailable

__all__ = ["CLOSE_ERRORS", "CLOSE_TIMEOUT", "DedicatedConnection"]

#: Errors a close may meet when the server or the socket is already gone.
CLOSE_ERRORS: tuple[type[BaseException], ...] = (*CONNECT_ERRORS, asyncpg.PostgresError)
#: Seconds a polite close (or unlock) may take before the connection is simply dropped: a
#: half-open peer never answers, and shutdown must not wait for TCP to give up.
CLOSE_TIMEOUT = 2.0


class DedicatedConnection:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.terminated = anyio.Event()
        conn.add_termination_listener(lambda _c: self.terminated.set())

    @property
    def alive(self) -> bool:
        return not self._conn.is_closed() and not self.terminated.is_set()

    async def ping(self, what: str, timeout: float) -> None:
        """An active check for a connection that is otherwise idle (presence, LISTEN): a
        half-open one never says it died, so ask it something (a transaction-free probe,
        ``awa.db.probe``). ``DatabaseUnavailable`` (and the connection dropped) when it does
        not answer within ``timeout``."""
        if not self.alive:
            raise DatabaseUnavailable(f"{what}: the connection is closed")
        try:
            with anyio.fail_after(timeout):
                await probe(self._conn)
        except TimeoutError as exc:
            self.terminate()
            raise DatabaseUnavailable(f"{what}: no answer within {timeout:g}s") from exc
        except CLOSE_ERRORS as exc:
            self.terminate()
            raise DatabaseUnavailable(f"{what} failed: {exc}") from exc

    async def close(self) -> None:
        """Close (terminate if a clean close fails, or does not end within
        ``CLOSE_TIMEOUT``: asyncpg's own timeout does not cover waiting for the cancel of a
        query still running); safe to call twice."""
        self.terminated.set()
        if self._conn.is_closed():
            return
        with anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self._conn.close(timeout=CLOSE_TIMEOUT)
                return
            except CLOSE_ERRORS:
                pass
        self._conn.terminate()

    def terminate(self) -> None:
        """Drop the connection at once, without a word to the server. For a peer that no
        longer answers: the server ends the session (and its locks) when it notices."""
        self.terminated.set()
        self._conn.terminate()
