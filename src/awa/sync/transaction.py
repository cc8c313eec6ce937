"""``SyncClient.transaction()``: your statements and your jobs in one transaction, from
blocking code (ADR 023).

A caller's own asyncpg connection cannot be handed to a ``SyncClient`` (it belongs to the
caller's event loop), so the transaction goes the other way: the SyncClient lends one of
its pooled connections for the length of a ``with`` block, and every statement of the block
(``execute``/``fetch``/``fetchrow``/``fetchval`` with ``$1`` parameters, ``insert``,
``insert_many``) runs on it in the client's loop. The block's end commits; an exception
rolls back, and then no job exists. The connection is the loop's throughout; the caller only
holds a handle, and a lock keeps two threads sharing a handle from overlapping statements.

Your statements are asyncpg's, and so are their errors (``asyncpg.UniqueViolationError``,
each with its ``sqlstate``), re-raised in your thread as they are: awa's translation is for
awa's own statements (it would call your missing table a missing awa schema). ``insert``,
``insert_many``, the begin and the commit raise awa's typed errors. Closing the SyncClient
rolls back a transaction still open; leaving its block then raises ``SyncClientClosed``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from awa.client import Client
from awa.errors import AwaError, RuntimeStateError, SyncClientClosed
from awa.model import InsertParams, Job, UniqueScope
from awa.store import Connection

__all__ = ["SyncTransaction"]

log = logging.getLogger("awa.sync")

T = TypeVar("T")


class Runner(Protocol):
    """``SyncClient._call``: run ``use(client)`` in the loop and wait for it."""

    def __call__(self, use: Callable[[Client], Awaitable[T]]) -> T: ...


class Transaction(Protocol):
    """What this module needs of asyncpg's transaction object (asyncpg is the store's)."""

    async def start(self) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class SyncTransaction:
    """A transaction on one of a ``SyncClient``'s pooled connections (``with
    sync.transaction() as tx``). Entered once; commits when the block ends."""

    def __init__(self, run: Runner, register: set[SyncTransaction]) -> None:
        self._run = run
        self._register = register  # the client's open transactions (touched in its loop)
        self._lock = threading.Lock()
        self._state = "new"
        self._conn: Connection | None = None
        self._tx: Transaction | None = None
        self._stack: AsyncExitStack | None = None

    def __enter__(self) -> Self:
        with self._lock:
            if self._state != "new":
                raise RuntimeStateError("a SyncTransaction is entered once: open a new one")
            self._state = "open"
            self._run(self._begin)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            if self._state != "open":
                return
            self._state = "done"
            commit = t is None
            try:
                self._run(lambda client: self._finish(client, commit=commit))
            except AwaError:
                if commit:
                    raise
                # The block's own exception is the one to see; the connection went back to
                # the pool regardless (and the server ends a transaction it loses).
                log.warning("rolling back a SyncClient transaction failed", exc_info=True)

    # ------------------------------------------------------------ statements

    def execute(self, query: str, *args: Any) -> str:
        """Run a statement; its status tag (``"INSERT 0 1"``)."""
        return self._on_connection(lambda client, conn: conn.execute(query, *args))

    def fetch(self, query: str, *args: Any) -> list[Any]:
        """Every row of a query (records: by index or by column name)."""
        return self._on_connection(lambda client, conn: conn.fetch(query, *args))

    def fetchrow(self, query: str, *args: Any) -> Any:
        """The first row of a query, or ``None``."""
        return self._on_connection(lambda client, conn: conn.fetchrow(query, *args))

    def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row, or ``None``."""
        return self._on_connection(lambda client, conn: conn.fetchval(query, *args))

    def insert(
        self,
        kind: str,
        args: Any = None,
        *,
        queue: str | None = None,
        priority: int = 2,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        max_attempts: int = 25,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        timeout: float | timedelta | None = None,
        unique_key: str | None = None,
        unique_scope: UniqueScope | str = UniqueScope.ACTIVE,
    ) -> Job:
        """``SyncClient.insert`` in this transaction: rolled back, the job never existed."""
        options: dict[str, Any] = {
            "queue": queue,
            "priority": priority,
            "run_at": run_at,
            "delay": delay,
            "max_attempts": max_attempts,
            "tags": tags,
            "metadata": metadata,
            "timeout": timeout,
            "unique_key": unique_key,
            "unique_scope": unique_scope,
        }
        return self._on_connection(lambda c, conn: c.insert(kind, args, conn=conn, **options))

    def insert_many(self, jobs: Iterable[InsertParams]) -> list[int]:
        """``SyncClient.insert_many`` (one COPY) in this transaction."""
        items = list(jobs)
        return self._on_connection(lambda c, conn: c.insert_many(items, conn=conn))

    # ------------------------------------------------------------- the loop's side

    def _on_connection(self, use: Callable[[Client, Connection], Awaitable[T]]) -> T:
        with self._lock:  # one statement at a time: asyncpg refuses overlapping ones
            if self._state != "open":
                raise RuntimeStateError("the transaction is not open: use it inside its block")

            async def run(client: Client) -> T:
                conn = self._conn
                if conn is None:
                    raise SyncClientClosed("the client closed and rolled this transaction back")
                return await use(client, conn)

            return self._run(run)

    async def _begin(self, client: Client) -> None:
        stack = AsyncExitStack()
        try:
            conn = await stack.enter_async_context(client.store.db.acquire())
            tx: Transaction = conn.transaction()
            await client.store.db.guard(tx.start)
        except BaseException:
            await stack.aclose()
            raise
        self._conn, self._tx, self._stack = conn, tx, stack
        self._register.add(self)

    async def _finish(self, client: Client, *, commit: bool) -> None:
        tx, stack = self._tx, self._stack
        self._register.discard(self)
        self._conn = self._tx = self._stack = None
        if tx is None or stack is None:
            if commit:
                raise SyncClientClosed("the client closed and rolled this transaction back")
            return
        try:
            await client.store.db.guard(tx.commit if commit else tx.rollback)
        finally:
            await stack.aclose()  # the connection goes back to the pool either way

    async def abandon(self) -> None:
        """Roll back and give the connection back: the client is closing (in its loop)."""
        tx, stack = self._tx, self._stack
        self._register.discard(self)
        self._conn = self._tx = self._stack = None
        if tx is None or stack is None:
            return
        try:
            await tx.rollback()
        except Exception:  # a broken connection: releasing it below discards it
            log.warning("rolling back a transaction at close failed", exc_info=True)
        finally:
            await stack.aclose()
