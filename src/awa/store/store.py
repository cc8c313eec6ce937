"""``Store``: the typed facade over awa's named SQL. One method per query; callers never see
SQL text or driver types beyond an opaque connection they may pass through.

Every method takes an optional ``now`` (``None`` = the database clock) so tests can pin time,
and batch methods take parallel lists so a flush is one round trip however many jobs it holds.

Progress values passed to the heartbeat and to the writes that end an attempt follow one
rule: ``None`` keeps the stored progress, ``CLEAR_PROGRESS`` clears it, anything else (a JSON
value) replaces it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, Self, TypeVar

import anyio
import asyncpg

from awa.clock import utcnow
from awa.db.connect import (
    CONNECT_ERRORS,
    RawJson,
    connect,
    create_pool,
    decode_json,
)
from awa.db.errors import translate_database_error
from awa.errors import (
    DatabaseUnavailable,
    InvalidTransition,
    JobNotFound,
    PoolExhausted,
    ValidationError,
)
from awa.model import InsertParams, Job, JobState
from awa.store.copy_stream import COPY_COLUMNS, CopyEncoder, utf8_session
from awa.store.dedicated import CLOSE_ERRORS, CLOSE_TIMEOUT, DedicatedConnection
from awa.store.queries import Query, load_queries
from awa.store.rows import job_from_row

__all__ = [
    "CLEAR_PROGRESS",
    "Connection",
    "FinishedAttempt",
    "QueueCount",
    "Rescheduled",
    "Store",
]

#: How long a call waits for a pooled connection before ``PoolExhausted``.
DEFAULT_ACQUIRE_TIMEOUT: Final = 30.0

#: A connection a caller may pass through (its own transaction) or receive from the pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
T = TypeVar("T")
StoreT = TypeVar("StoreT", bound="Store")


class _ClearProgress:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CLEAR_PROGRESS"


#: A progress value meaning "clear the stored progress" (``None`` means "keep it").
CLEAR_PROGRESS: Final = _ClearProgress()

# JSON null: the SQL turns it into NULL, while an SQL NULL element keeps the stored value.
_JSON_NULL = RawJson("null")


def _progress_param(values: Sequence[Any]) -> list[Any] | None:
    """The jsonb[] argument for a batch's progress: None (keep all) when nothing changed."""
    if all(v is None for v in values):
        return None
    return [_JSON_NULL if v is CLEAR_PROGRESS else v for v in values]


@dataclass(frozen=True)
class QueueCount:
    queue: str
    state: str
    count: int
    lag_s: float | None


@dataclass(frozen=True)
class FinishedAttempt:
    """A running attempt to move to history as failed or cancelled."""

    job_id: int
    run_lease: int
    state: JobState
    error: dict[str, Any] | None
    progress: Any = None  # None keeps the stored progress; CLEAR_PROGRESS clears it


@dataclass(frozen=True)
class Rescheduled:
    """A running attempt to put back in line (retry or snooze)."""

    job_id: int
    run_lease: int
    state: JobState  # RETRYABLE or SCHEDULED
    run_at: datetime
    error: dict[str, Any] | None
    give_back_attempt: bool
    progress: Any = None  # None keeps the stored progress; CLEAR_PROGRESS clears it


class _ReportedAttempt(Protocol):
    """What ``_cancel_the_rest`` needs of a reported outcome (finish, reschedule,
    callback resolution)."""

    @property
    def job_id(self) -> int: ...
    @property
    def run_lease(self) -> int: ...
    @property
    def progress(self) -> Any: ...


class _PooledQueries:
    """``pool.fetch`` and friends, but each waits for its connection through
    ``Store.acquire``: bounded by ``acquire_timeout`` (``PoolExhausted``) instead of
    asyncpg's unbounded wait, so reads on an exhausted pool fail typed, like inserts."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._store.acquire() as c:
            return list(await c.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._store.acquire() as c:
            return await c.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._store.acquire() as c:
            return await c.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self._store.acquire() as c:
            return str(await c.execute(query, *args))


class Store:
    """Owns the connection pool. Create with ``await Store.open(url)``."""

    QUERIES = load_queries(
        frozenset(
            {
                "insert_job",
                "lock_live_job",
                "claim_unique_key",
                "job_by_unique_key",
                "drop_orphan_unique_key",
                "reserve_job_ids",
                "notify_queues",
                "notify_due",
                "claim_batch",
                "complete_batch",
                "finalize_batch",
                "reschedule_batch",
                "finalize_cancel_requested",
                "heartbeat",
                "get_job",
                "list_jobs",
                "cancel_waiting_job",
                "request_cancel_running",
                "retry_finished_job",
                "retry_deferred_job",
                "reclaim_unique_key",
                "queue_counts",
                "unhandled_kinds",
                "register_runtime",
                "touch_runtime",
                "stop_runtime",
                "list_runtimes",
            }
        )
    )

    def __init__(
        self, pool: asyncpg.Pool, url: str, *, acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT
    ) -> None:
        self.pool = pool
        self.url = url
        self.acquire_timeout = acquire_timeout
        #: One-statement queries on a pooled connection, with the acquire timeout.
        self.db = _PooledQueries(self)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
    ) -> Self:
        pool = await create_pool(url, min_size=min_size, max_size=max_size)
        return cls(pool, url, acquire_timeout=acquire_timeout)

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

    def sibling(self, kind: type[StoreT]) -> StoreT:
        """A store of another kind (cron, callbacks, DLQ, …) over this one's pool and
        acquire timeout."""
        return kind(self.pool, self.url, acquire_timeout=self.acquire_timeout)

    def sql(self, name: str) -> str:
        return self.QUERIES[name].sql

    def query(self, name: str) -> Query:
        return self.QUERIES[name]

    async def _guard(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make``; every driver or server error leaves as a typed awa error with a
        defined outcome (``awa.db.errors``: reconnect, retry, or the caller's to handle)."""
        try:
            return await make()
        except DatabaseUnavailable:
            raise  # already typed (PoolExhausted is a ConnectionError, hence an OSError)
        except CONNECT_ERRORS as exc:
            cause = _breaking_error(exc)
            raise DatabaseUnavailable(f"lost PostgreSQL connection: {cause}") from exc
        except asyncpg.PostgresError as exc:
            raise translate_database_error(exc) from exc

    async def _wake_for(self, c: Connection, rows: Sequence[asyncpg.Record]) -> None:
        """Announce requeued jobs (rows with ``queue``, ``state``, ``run_at``), delivered at
        commit: their queues' dispatchers for the ones ``available`` now, and the leader's
        promotion (``awa_due``) with the earliest ``run_at`` of the others."""
        woken = sorted({r["queue"] for r in rows if r["state"] == "available"})
        if woken:
            await c.execute(self.sql("notify_queues"), woken)
        deferred = [r["run_at"] for r in rows if r["state"] != "available"]
        if deferred:
            await c.execute(self.sql("notify_due"), str(min(deferred).timestamp()))

    async def _cancel_the_rest(
        self,
        c: Connection,
        items: Sequence[_ReportedAttempt],
        applied: set[int],
        now: datetime | None,
    ) -> set[int]:
        """``applied`` plus those of the other ``items`` that end cancelled because an
        operator asked (their reported outcome did not apply: the request wins)."""
        rest = [i for i in items if i.job_id not in applied]
        if not rest:
            return applied
        return applied | await self._finalize_cancel_requested(
            c, [(i.job_id, i.run_lease) for i in rest], now, progress=[i.progress for i in rest]
        )

    async def _finalize_cancel_requested(
        self,
        c: Connection,
        pairs: Sequence[tuple[int, int]],
        now: datetime | None,
        *,
        progress: Sequence[Any] = (),
        states: Sequence[str] | None = None,
    ) -> set[int]:
        """End cancelled the attempts (id, run_lease) an operator asked to cancel, when
        their outcome is anything but success: a reported failure or retry, or a rescue
        (``states``: the rescue's). Returns the ids that ended so."""
        rows = await c.fetch(
            self.sql("finalize_cancel_requested"),
            [job_id for job_id, _ in pairs],
            [lease for _, lease in pairs],
            now,
            _progress_param(progress),
            states,
        )
        return {int(r["id"]) for r in rows}

    @asynccontextmanager
    async def connection(self, conn: Connection | None = None) -> AsyncIterator[Connection]:
        """The caller's connection when given, else one from the pool."""
        if conn is not None:
            yield conn
            return
        async with self.acquire() as acquired:
            yield acquired

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
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
        finally:
            await self.pool.release(acquired)

    async def dedicated_connection(self) -> Connection:
        """A connection outside the pool (LISTEN, leadership): its life is the caller's."""
        return await connect(self.url)

    # ----------------------------------------------------------------- inserts

    async def insert(
        self, params: InsertParams, *, conn: Connection | None = None, now: datetime | None = None
    ) -> Job:
        async def run(c: Connection) -> Job:
            if params.unique_key is None:
                return await self._insert_row(c, params, None, now)
            async with c.transaction():
                for _ in range(2):
                    job_id = await c.fetchval(self.sql("claim_unique_key"), params.unique_key)
                    if job_id is not None:
                        return await self._insert_row(c, params, int(job_id), now)
                    row = await c.fetchrow(self.sql("job_by_unique_key"), params.unique_key)
                    if row is not None:
                        return job_from_row(row, duplicate=True, json_as_text=True)
                    await c.execute(self.sql("drop_orphan_unique_key"), params.unique_key)
            raise InvalidTransition(0, "unique", f"claim unique key {params.unique_key!r}")

        async with self.connection(conn) as c:
            return await self._guard(lambda: run(c))

    async def _insert_row(
        self, c: Connection, p: InsertParams, job_id: int | None, now: datetime | None
    ) -> Job:
        row = await c.fetchrow(
            self.sql("insert_job"),
            p.kind,
            p.queue,
            RawJson(p.args_json),
            p.priority,
            p.run_at,
            p.max_attempts,
            p.timeout_seconds,
            list(p.tags),
            RawJson(p.metadata_json),
            p.unique_key,
            p.unique_states,
            now,
            job_id,
        )
        assert row is not None
        state = JobState(row["state"])
        return Job(
            id=int(row["id"]),
            kind=p.kind,
            queue=p.queue,
            args=decode_json(row["args"]),
            state=state,
            priority=p.priority,
            attempt=0,
            max_attempts=p.max_attempts,
            run_at=row["run_at"],
            created_at=row["created_at"],
            timeout=p.timeout_seconds,
            tags=list(p.tags),
            metadata=decode_json(row["metadata"]),
            unique_key=p.unique_key,
        )

    async def insert_many(
        self,
        params: Sequence[InsertParams],
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert many jobs with one COPY (plus one statement per unique-keyed job).

        Returns ids in input order; a unique-keyed duplicate yields the existing job's id.
        """
        if not params:
            return []

        async def run(c: Connection) -> list[int]:
            ids: list[int] = [0] * len(params)
            plain = [p for p in params if p.unique_key is None]
            at = now or utcnow()
            async with c.transaction():
                if plain:
                    rows = await c.fetch(self.sql("reserve_job_ids"), len(plain))
                    plain_ids = [int(row[0]) for row in rows]
                    if len(plain_ids) != len(plain):
                        raise ValueError("reserve_job_ids returned the wrong number of ids")
                    if len(plain) == len(params):
                        ids = plain_ids
                    else:
                        reserved = iter(plain_ids)
                        ids = [0 if p.unique_key is not None else next(reserved) for p in params]
                    encoder = CopyEncoder(at)
                    if utf8_session(c):
                        await c.copy_to_table(
                            "jobs",
                            schema_name="awa",
                            columns=COPY_COLUMNS,
                            source=encoder.stream(plain, plain_ids),
                            format="binary",
                        )
                    else:  # the driver encodes text in the session's encoding
                        await c.copy_records_to_table(
                            "jobs",
                            schema_name="awa",
                            columns=COPY_COLUMNS,
                            records=encoder.records(plain, plain_ids),
                        )
                    if encoder.woken:
                        await c.execute(self.sql("notify_queues"), sorted(encoder.woken))
                    if encoder.earliest_deferred is not None:
                        await c.execute(
                            self.sql("notify_due"), str(encoder.earliest_deferred.timestamp())
                        )
                for index, p in enumerate(params):
                    if p.unique_key is not None:
                        ids[index] = (await self.insert(p, conn=c, now=now)).id
            return ids

        async with self.connection(conn) as c:
            return await self._guard(lambda: run(c))

    # ------------------------------------------------------------ worker path

    async def claim(
        self,
        queue: str,
        kinds: Sequence[str],
        limit: int,
        instance_id: str,
        now: datetime | None = None,
    ) -> list[Job]:
        async def run() -> list[Job]:
            rows = await self.db.fetch(
                self.sql("claim_batch"), queue, list(kinds), limit, instance_id, now
            )
            return [job_from_row(r) for r in rows]

        return await self._guard(run)

    async def complete(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        results: Sequence[Any],
        now: datetime | None = None,
        *,
        progress: Sequence[Any] | None = None,
    ) -> set[int]:
        """Record completions, with each attempt's final ``progress`` (default: keep it);
        returns the ids applied (the rest were stale)."""

        async def run() -> set[int]:
            rows = await self.db.fetch(
                self.sql("complete_batch"),
                list(job_ids),
                list(leases),
                list(results),
                now,
                None if progress is None else _progress_param(progress),
            )
            return {int(r["id"]) for r in rows}

        return await self._guard(run)

    async def finalize(
        self, items: Sequence[FinishedAttempt], now: datetime | None = None
    ) -> set[int]:
        async def run() -> set[int]:
            async with self.acquire() as c, c.transaction():
                rows = await c.fetch(
                    self.sql("finalize_batch"),
                    [i.job_id for i in items],
                    [i.run_lease for i in items],
                    [i.state.value for i in items],
                    [i.error for i in items],
                    now,
                    _progress_param([i.progress for i in items]),
                )
                # A failed attempt of a job an operator asked to cancel ends cancelled.
                return await self._cancel_the_rest(c, items, {int(r["id"]) for r in rows}, now)

        return await self._guard(run)

    async def reschedule(
        self, items: Sequence[Rescheduled], now: datetime | None = None
    ) -> set[int]:
        async def run() -> set[int]:
            async with self.acquire() as c, c.transaction():
                rows = await c.fetch(
                    self.sql("reschedule_batch"),
                    [i.job_id for i in items],
                    [i.run_lease for i in items],
                    [i.state.value for i in items],
                    [i.run_at for i in items],
                    [i.error for i in items],
                    [i.give_back_attempt for i in items],
                    now,
                    _progress_param([i.progress for i in items]),
                )
                await self._wake_for(c, rows)
                return await self._cancel_the_rest(c, items, {int(r["id"]) for r in rows}, now)

        return await self._guard(run)

    async def heartbeat(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        progress: Sequence[Any],
        now: datetime | None = None,
    ) -> tuple[set[int], dict[int, str | None]]:
        """Refresh heartbeats and write ``progress`` (``None`` keeps a job's progress);
        return (lost ids, cancel-requested id → operator's reason)."""

        async def run() -> tuple[set[int], dict[int, str | None]]:
            rows = await self.db.fetch(
                self.sql("heartbeat"), list(job_ids), list(leases), _progress_param(progress), now
            )
            lost = {int(r["id"]) for r in rows if r["lost"]}
            cancel = {int(r["id"]): r["cancel_reason"] for r in rows if not r["lost"]}
            return lost, cancel

        return await self._guard(run)

    # ------------------------------------------------------------------ admin

    async def get_job(self, job_id: int) -> Job:
        row = await self._guard(lambda: self.db.fetchrow(self.sql("get_job"), job_id))
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        if not 1 <= limit <= 10_000:
            raise ValidationError("limit", limit, "expected 1..10000")
        rows = await self._guard(
            lambda: self.db.fetch(
                self.sql("list_jobs"), state.value if state else None, queue, kind, limit, before_id
            )
        )
        return [job_from_row(r) for r in rows]

    async def cancel_job(self, job_id: int, reason: str, now: datetime | None = None) -> Job:
        """Cancel now if the job is waiting; ask its runtime to stop it if it is running."""

        async def run() -> None:
            async with self.acquire() as c, c.transaction():
                # Lock first: without it, a result committed between the two statements
                # below made a queued job look uncancellable.
                await c.fetchval(self.sql("lock_live_job"), job_id)
                if await c.fetchval(self.sql("cancel_waiting_job"), job_id, reason, now):
                    return
                if await c.fetchval(self.sql("request_cancel_running"), job_id, reason):
                    return
                row = await c.fetchrow(self.sql("get_job"), job_id)
                if row is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(job_id, row["state"], "cancel")

        await self._guard(run)
        return await self.get_job(job_id)

    async def retry_job(self, job_id: int, now: datetime | None = None) -> Job:
        """Make a finished, scheduled or retryable job available now (attempts reset when
        it had finished)."""

        async def run() -> None:
            async with self.acquire() as c, c.transaction():
                row = await c.fetchrow(self.sql("retry_deferred_job"), job_id, now)
                if row is None:
                    row = await c.fetchrow(self.sql("retry_finished_job"), job_id, now)
                    if row is not None:
                        await self._retake_unique_key(c, job_id)
                if row is None:
                    current = await c.fetchrow(self.sql("get_job"), job_id)
                    if current is None:
                        raise JobNotFound(job_id)
                    raise InvalidTransition(job_id, current["state"], "retry")
                await c.execute(self.sql("notify_queues"), [row["queue"]])

        await self._guard(run)
        return await self.get_job(job_id)

    async def _retake_unique_key(self, c: Connection, job_id: int) -> None:
        key = await c.fetchval("SELECT unique_key FROM awa.jobs WHERE id = $1", job_id)
        if key is None:
            return
        if await c.fetchval(self.sql("reclaim_unique_key"), key, job_id) is None:
            raise InvalidTransition(job_id, "finished", f"retry: unique key {key!r} is taken")

    async def queue_counts(self, now: datetime | None = None) -> list[QueueCount]:
        rows = await self._guard(lambda: self.db.fetch(self.sql("queue_counts"), now))
        return [
            QueueCount(r["queue"], r["state"], int(r["count"]), _float(r["lag_s"])) for r in rows
        ]

    async def unhandled_kinds(
        self, liveness_window: float, now: datetime | None = None
    ) -> list[tuple[str, str, int]]:
        rows = await self._guard(
            lambda: self.db.fetch(self.sql("unhandled_kinds"), now, liveness_window)
        )
        return [(r["queue"], r["kind"], int(r["count"])) for r in rows]

    async def notify_queues(self, queues: Sequence[str]) -> None:
        await self._guard(lambda: self.db.execute(self.sql("notify_queues"), list(queues)))

    # --------------------------------------------------------------- runtimes

    async def register_runtime(
        self,
        instance_id: str,
        hostname: str,
        pid: int,
        role: str,
        queues: dict[str, int],
        kinds: Sequence[str],
        now: datetime | None = None,
    ) -> None:
        await self._guard(
            lambda: self.db.execute(
                self.sql("register_runtime"),
                instance_id,
                hostname,
                pid,
                role,
                queues,
                list(kinds),
                now,
            )
        )

    async def touch_runtime(self, instance_id: str, now: datetime | None = None) -> bool:
        """Refresh the liveness row; False when there is none (garbage-collected while the
        runtime was unseen, e.g. partitioned: the caller registers again)."""
        status = await self._guard(
            lambda: self.db.execute(self.sql("touch_runtime"), instance_id, now)
        )
        return status.rsplit(" ", 1)[-1] != "0"

    async def stop_runtime(self, instance_id: str, now: datetime | None = None) -> None:
        await self._guard(lambda: self.db.execute(self.sql("stop_runtime"), instance_id, now))

    async def list_runtimes(self) -> list[dict[str, Any]]:
        rows = await self._guard(lambda: self.db.fetch(self.sql("list_runtimes")))
        return [dict(r) for r in rows]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


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


def _breaking_error(exc: BaseException) -> BaseException:
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
