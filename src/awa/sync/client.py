"""``awa.SyncClient``: the producer's API for code that cannot await (ADR 023).

A Flask or Django view, a WSGI app, a script or a management command calls it like any
blocking library. Behind it, one ``awa.Client`` (one connection pool) lives in an event loop
on a background thread (``LoopThread``); each call runs the async client's coroutine there
and waits for it, so a call costs a pooled round trip rather than a new loop and a new
connection (``asyncio.run`` per insert).

- **Thread-safe**: any number of threads may call one instance at once; calls run
  concurrently in the loop, bounded by ``pool_size``.
- **Errors keep their type**: an exception raised in the loop thread is re-raised in the
  caller's thread as it is (``awa.ValidationError``, ``awa.JobNotFound``, ...).
- **Tracing**: the caller's context (its OpenTelemetry span) is carried into the loop with
  each call, so an insert from a traced view continues the view's trace.
- **Your own transaction**: an asyncpg connection belongs to the event loop that opened it,
  so the caller's connection cannot be handed over; ``conn=`` is refused with a
  ``ValidationError`` that says so. Instead: run your statements and the inserts in
  ``with sync.transaction() as tx`` (one of the client's connections, lent for the block);
  or, with another driver or an ORM (psycopg, Django), insert after your transaction
  commits (Django's ``transaction.on_commit``), with a ``unique_key`` when a retry must not
  enqueue twice; or use ``awa.Client`` with ``conn=`` from async code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from awa.client import Client
from awa.errors import ConfigError, ValidationError
from awa.model import BatchOptions, InsertOptions, InsertParams, Job, JobState
from awa.store import QueueCount
from awa.store.database import DEFAULT_ACQUIRE_TIMEOUT
from awa.sync.loop_thread import LoopThread
from awa.sync.transaction import SyncTransaction
from awa.validation import to_seconds

__all__ = ["SyncClient"]

T = TypeVar("T")

#: Why ``conn=`` is refused: said in full, since the caller's next step depends on it.
_NO_CALLER_CONNECTION = (
    "a SyncClient cannot join your transaction: asyncpg connections belong to the event "
    "loop that opened them, and its own runs on another thread. Run your statements and the "
    "insert in `with sync.transaction() as tx` (tx.execute, tx.insert), or insert after your "
    "transaction commits (Django: transaction.on_commit) with a unique_key if a retry must "
    "not enqueue twice, or use awa.Client(...).insert(..., conn=conn) in async code"
)


class SyncClient:
    """Blocking, thread-safe producer and admin calls over a pooled ``awa.Client``.

    ``SyncClient(url)`` (``url`` defaults to ``AWA_DATABASE_URL``) or
    ``SyncClient(client=app_client)`` to use an application's ``awa.Client`` (its handler
    declarations give inserts their default queue and timeout; it must not be connected:
    the SyncClient connects it in its own loop and closes it; its own ``pool_size`` and
    ``pool_acquire_timeout`` apply, not these). Use as a context manager or
    call ``close()``; a forgotten client is closed at interpreter exit.

    ``call_timeout`` bounds each call (``awa.SyncCallTimeout``; ``None``: wait for ever);
    ``close_grace`` is how long ``close()`` lets calls in flight finish. Nothing connects
    until the first call that needs the database, so ``migrate()`` works on a fresh one.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        client: Client | None = None,
        pool_size: int = 10,
        pool_acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        call_timeout: float | None = 60.0,
        close_grace: float = 5.0,
    ) -> None:
        if client is not None:
            if database_url is not None:
                raise ValidationError("database_url", database_url, "give a URL or a client")
            if _connected(client):
                raise ValidationError(
                    "client",
                    client,
                    "already connected (its pool belongs to another event loop): "
                    "pass an unconnected awa.Client",
                )
        self._client = client or Client(
            database_url, pool_size=pool_size, pool_acquire_timeout=pool_acquire_timeout
        )
        self.call_timeout = to_seconds("call_timeout", call_timeout)
        self.close_grace = to_seconds("close_grace", close_grace, allow_zero=True) or 0.0
        self._loop = LoopThread("awa-sync-client", shutdown=self._shutdown)
        self._connecting: asyncio.Lock | None = None  # the loop's own; made there
        self._transactions: set[SyncTransaction] = set()  # open ones; touched in the loop

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the loop thread and close the pool. Calls in flight get ``close_grace``
        seconds to finish; the rest raise ``SyncClientClosed`` in their threads, as does
        every later call. Idempotent."""
        self._loop.close(self.close_grace)

    @property
    def closed(self) -> bool:
        return self._loop.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def _shutdown(self) -> None:
        """In the loop, once calls in flight have ended: roll back open transactions (their
        connections go back to the pool), then close the pool."""
        for transaction in list(self._transactions):
            await transaction.abandon()
        await self._client.close()

    def _call(self, use: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``use(client)`` in the loop, the client connected first, and wait for it."""

        async def run() -> T:
            return await use(await self._connected())

        return self._loop.call(run, self.call_timeout)

    async def _connected(self) -> Client:
        """The client, connected once (concurrent first calls share one pool: ``connect``
        is idempotent but not atomic, so the loop's lock makes it so)."""
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            return await self._client.connect()

    def migrate(self) -> list[int]:
        """Apply pending schema migrations (safe to run from several processes at once)."""

        async def run() -> list[int]:
            return await self._client.migrate()  # its own connection: no pool needed

        return self._loop.call(run, self.call_timeout)

    # --------------------------------------------------------------- insert

    def params(self, kind: str, args: Any = None, **options: Unpack[InsertOptions]) -> InsertParams:
        """Validated insert parameters for ``insert_many`` (``awa.Client.params``; runs in
        the calling thread, no database). Options: ``awa.InsertOptions``."""
        return self._client.params(kind, args, **options)

    def insert(
        self, kind: str, args: Any = None, *, conn: object = None, **options: Unpack[InsertOptions]
    ) -> Job:
        """Insert one job and return it as stored (``awa.Client.insert``; ``job.duplicate``
        when its ``unique_key`` was already held). ``conn`` is refused: see the module
        docstring for inserting alongside your own transaction."""
        if conn is not None:
            raise ValidationError("conn", conn, _NO_CALLER_CONNECTION)
        return self._call(lambda c: c.insert(kind, args, **options))

    def insert_many(self, jobs: Iterable[InsertParams], *, conn: object = None) -> list[int]:
        """Insert many jobs with one COPY, all or nothing; their ids in input order. Build
        items with ``params(...)``. ``conn`` is refused, as for ``insert``."""
        if conn is not None:
            raise ValidationError("conn", conn, _NO_CALLER_CONNECTION)
        items = list(jobs)  # here: a generator may belong to the caller's thread
        return self._call(lambda c: c.insert_many(items))

    def insert_batch(
        self,
        kind: str,
        args: Iterable[Any],
        *,
        conn: object = None,
        **options: Unpack[BatchOptions],
    ) -> list[int]:
        """One job of ``kind`` per item of ``args``, every other option shared, with one
        COPY (``awa.Client.insert_batch``). ``conn`` is refused, as for ``insert``."""
        if conn is not None:
            raise ValidationError("conn", conn, _NO_CALLER_CONNECTION)
        items = list(args)  # here: a generator may belong to the caller's thread
        return self._call(lambda c: c.insert_batch(kind, items, **options))

    def transaction(self) -> SyncTransaction:
        """``with sync.transaction() as tx``: ``tx.execute``/``fetch``/``fetchrow``/
        ``fetchval`` (``$1`` parameters) and ``tx.insert``/``insert_many`` in one
        transaction on a pooled connection, committed when the block ends, rolled back if it
        raises (then no job exists). The connection is held for the block: keep it short."""
        return SyncTransaction(self._call, self._transactions)

    # ---------------------------------------------------------------- admin

    def get_job(self, job_id: int) -> Job:
        """The job as stored now; ``awa.JobNotFound`` if there is none."""
        return self._call(lambda c: c.get_job(job_id))

    def list_jobs(
        self,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest jobs first, filtered; page with ``before_id`` (the last id seen)."""
        return self._call(
            lambda c: c.list_jobs(
                state=state, queue=queue, kind=kind, limit=limit, before_id=before_id
            )
        )

    def cancel_job(self, job_id: int, reason: str = "cancelled by operator") -> Job:
        """Cancel a waiting job now; a running one stops at its runtime's next heartbeat."""
        return self._call(lambda c: c.cancel_job(job_id, reason))

    def retry_job(self, job_id: int) -> Job:
        """Run a finished, scheduled or retryable job again now."""
        return self._call(lambda c: c.retry_job(job_id))

    def queue_stats(self) -> list[QueueCount]:
        """Depth and lag per queue and state."""
        return self._call(lambda c: c.queue_stats())


def _connected(client: Client) -> bool:
    try:
        client.store  # noqa: B018 - raises ConfigError until the client is connected
    except ConfigError:
        return False
    return True
