"""``Database``: the resources every store part shares, and the one place a pool is opened.

A part (``Store.jobs``, ``Store.cron``, …) holds a ``Database`` and asks it for connections;
it never opens one itself. What lives here is what every part needs and none should repeat:

- the pool, its URL and the acquire timeout (``acquire``: a typed ``PoolExhausted`` instead
  of asyncpg's unbounded wait);
- error typing (``guard``): every driver or server error leaves as a typed awa error
  (``awa.db.errors``);
- the leadership-term fence (ADR 012): a ``Database`` with a ``term`` runs every pooled
  connection it hands out inside a transaction that first runs ``term_fence``, a share lock
  on the row of ``awa.leader_term`` taken only while the row still holds that term. So every
  statement of every part commits only if no newer term began before it; a newer leader's
  term bump waits for the fenced transactions in flight, and each one begun later raises
  ``LeadershipLost`` without writing anything. No part needs to know: fencing is where the
  connection comes from. Unfenced (``term=None``: the CLI, tests, ``tick()`` before it
  leads) nothing changes. One exception, on a scheduled job's latency path:
  ``fetchrow_self_fenced`` runs a statement that takes the same lock itself, in one round
  trip instead of four (``promote_due``, ADR 044);
- dedicated connections (LISTEN, leadership), outside the pool;
- a bounded close: a pool whose connections no longer answer is terminated after
  ``CLOSE_TIMEOUT`` rather than awaited until TCP gives up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, TypeVar

import anyio
import asyncpg

from awa.db.connect import CONNECT_ERRORS, connect, create_pool
from awa.db.errors import READ_ONLY, translate_database_error
from awa.db.queries import paired_queries
from awa.errors import (
    DatabaseBusy,
    DatabaseError,
    DatabaseUnavailable,
    LeadershipLost,
    PoolExhausted,
)
from awa.store.dedicated import CLOSE_ERRORS, CLOSE_TIMEOUT

__all__ = [
    "DEFAULT_ACQUIRE_TIMEOUT",
    "FENCE_IDLE_LIMIT",
    "Connection",
    "Database",
    "PooledQueries",
    "one_row",
]

#: How long a call waits for a pooled connection before ``PoolExhausted``.
DEFAULT_ACQUIRE_TIMEOUT: Final = 30.0

#: How long a fenced transaction may sit idle between statements before the server ends
#: its session. A live leader never pauses that long inside a transaction; a vanished one
#: (host crash, partition) would otherwise keep the term row share-locked, and the next
#: leader's term bump waiting, until TCP gives up.
FENCE_IDLE_LIMIT: Final = "5s"

#: A connection a caller may pass through (its own transaction) or receive from the pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
T = TypeVar("T")

_QUERIES = paired_queries("database")


def one_row(row: asyncpg.Record | None, statement: str) -> asyncpg.Record:
    """The row a statement always returns (an aggregate, an INSERT … RETURNING); its absence
    means the statement itself is broken, so the caller gets a typed ``DatabaseError``
    rather than an ``AssertionError`` (which ``python -O`` would not even raise)."""
    if row is None:
        raise DatabaseError("XX000", f"{statement} returned no row")
    return row


def _sql(name: str) -> str:
    return _QUERIES[name].sql


class PooledQueries:
    """``pool.fetch`` and friends, but each waits for its connection through
    ``Database.acquire``: bounded by the acquire timeout (``PoolExhausted``) and fenced like
    every other connection, so one-statement reads and writes need no block of their own."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._db.acquire() as c:
            return list(await c.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._db.acquire() as c:
            return await c.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._db.acquire() as c:
            return await c.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self._db.acquire() as c:
            return str(await c.execute(query, *args))


class Database:
    """The pool (and, with ``term``, the fence every connection from it runs in).

    Open with ``await Database.open(url)``; ``fenced(term)`` is a view over the same pool
    whose connections are fenced by ``term``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        url: str,
        *,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        term: int | None = None,
    ) -> None:
        self.pool = pool
        self.url = url
        self.acquire_timeout = acquire_timeout
        #: The leadership term this database's connections write in; ``None``: not fenced.
        self.term = term
        #: One-statement queries on a pooled connection, with the acquire timeout.
        self.run = PooledQueries(self)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        term: int | None = None,
    ) -> Database:
        """Open the pool: the one place in the store a pool is created."""
        pool = await create_pool(url, min_size=min_size, max_size=max_size)
        return cls(pool, url, acquire_timeout=acquire_timeout, term=term)

    def fenced(self, term: int | None) -> Database:
        """This pool, with every connection fenced by ``term`` (``None``: unfenced)."""
        return Database(self.pool, self.url, acquire_timeout=self.acquire_timeout, term=term)

    async def close(self) -> None:
        """Close the pool; terminate it if that does not finish within ``CLOSE_TIMEOUT``
        (asyncpg waits for the server's goodbye, which a half-open connection never sends,
        so an unbounded close would hang a shutdown forever)."""
        closed = False
        with anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self.pool.close()
                closed = True
            except CLOSE_ERRORS:
                pass
        if not closed:
            self.pool.terminate()

    async def guard(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make``; every driver or server error leaves as a typed awa error with a
        defined outcome (``awa.db.errors``: reconnect, retry, or the caller's to handle)."""
        try:
            return await make()
        except DatabaseUnavailable:
            raise  # already typed (PoolExhausted is a ConnectionError, hence an OSError)
        except CONNECT_ERRORS as exc:
            cause = breaking_error(exc)
            raise DatabaseUnavailable(f"lost PostgreSQL connection: {cause}") from exc
        except asyncpg.PostgresError as exc:
            raise translate_database_error(exc) from exc

    @asynccontextmanager
    async def connection(self, conn: Connection | None = None) -> AsyncIterator[Connection]:
        """The caller's connection when given, else one from the pool."""
        if conn is not None:
            yield conn
            return
        async with self.acquire() as acquired:
            yield acquired

    def acquire(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection; with a ``term``, inside a transaction that commits when the
        block ends (rolls back if it raises) and only if the term is still current. (Chosen
        per call rather than wrapped, so an unfenced acquire costs what it did before the
        fence existed: it is on every statement of the hot path.)"""
        return self._pooled() if self.term is None else self._fenced(self.term)

    async def fetchrow_self_fenced(self, statement: str, query: str, *args: Any) -> asyncpg.Record:
        """Run ``query`` (named ``statement``), a statement that takes the fence itself, on
        a pooled connection outside any fenced transaction: one round trip where a fenced
        transaction takes four (ADR 044). ``self.term`` is passed as its last parameter
        (None: unfenced); the statement must share-lock the term row while that term is
        current before its first lock or write (``promote_due`` shows how) and return a
        ``current`` column, false when a newer term began and it touched nothing: then
        ``LeadershipLost``, as from a fenced transaction."""
        async with self._pooled() as c:
            row = one_row(await c.fetchrow(query, *args, self.term), statement)
        if self.term is not None and not row["current"]:
            raise LeadershipLost(self.term)
        return row

    @asynccontextmanager
    async def _fenced(self, term: int) -> AsyncIterator[Connection]:
        async with self._pooled() as c, c.transaction():
            if await c.fetchrow(_sql("term_fence"), term, FENCE_IDLE_LIMIT) is None:
                raise LeadershipLost(term)
            yield c

    @asynccontextmanager
    async def _pooled(self) -> AsyncIterator[Connection]:
        """A pooled connection, waiting at most ``acquire_timeout`` for one to free up: a
        pool the application holds entirely must give producers a typed error, not a hang."""
        started = anyio.current_time()
        try:
            acquired = await self.pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError as exc:
            waited = anyio.current_time() - started
            if waited < 0.95 * self.acquire_timeout:
                # Not the pool's wait: reopening a dropped pooled connection timed out.
                raise DatabaseUnavailable(f"cannot get a PostgreSQL connection: {exc}") from exc
            raise PoolExhausted(
                f"no pooled connection became free within {self.acquire_timeout:g}s (pool "
                f"size {self.pool.get_max_size()}): all are in use, e.g. held by long "
                "transactions; retry, or raise the pool size"
            ) from None
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"cannot get a PostgreSQL connection: {exc}") from exc
        try:
            yield acquired
        except (asyncpg.exceptions.ReadOnlySQLTransactionError, DatabaseBusy) as exc:
            # Read-only (raw, or already typed by guard): a standby, e.g. a DNS name still
            # naming a demoted primary. This session can never write; drop it so the pool
            # reconnects through the URL (ADR 036).
            if getattr(exc, "sqlstate", None) == READ_ONLY:
                acquired.terminate()
            raise
        finally:
            await self.pool.release(acquired)

    async def dedicated_connection(self, idle_limit: float | None = None) -> asyncpg.Connection:
        """A connection outside the pool (LISTEN, leadership): its life is the caller's."""
        return await connect(self.url, idle_limit=idle_limit)


def breaking_error(exc: BaseException) -> BaseException:
    """The error that broke the connection, not asyncpg's complaint about it afterwards:
    leaving ``c.transaction()`` on a connection that died mid-statement raises
    ``InterfaceError`` ("cannot call Transaction.__aexit__(): the underlying connection is
    closed") with the real cause (a terminate, 57P01; a reset) as its ``__context__``."""
    while isinstance(exc, asyncpg.InterfaceError):
        context = exc.__context__
        if context is None or not isinstance(context, (*CONNECT_ERRORS, asyncpg.PostgresError)):
            break
        exc = context
    return exc
