"""``awa.Client``: insert jobs, register handlers, administer jobs.

A client owns a connection pool. It is also where handlers are declared
(``@client.handler("kind")``), so one module-level object describes an application: the
CLI's ``awa worker --app module:client`` loads it and runs a runtime for its handlers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from types import TracebackType
from typing import Any, Self, Unpack

from awa.callbacks import Callbacks
from awa.clock import Clock, SystemClock
from awa.config import database_url_from_env
from awa.cron import CronSchedule, CronTable
from awa.db import check_database_url, connect, current_version, migrate
from awa.db.migrate import MIGRATIONS
from awa.dlq import DeadLetters
from awa.errors import ConfigError, MigrationError, ValidationError
from awa.handlers import HandlerRegistry, check_description
from awa.insert_template import Templates
from awa.local_claims import LocalClaims
from awa.model import (
    BatchOptions,
    InsertOptions,
    InsertParams,
    Job,
    JobState,
    UniqueScope,
    parse_state,
)
from awa.queues import Queues
from awa.store import Connection, QueueCount, Store
from awa.store.database import DEFAULT_ACQUIRE_TIMEOUT
from awa.telemetry import Instruments, inject_trace_context, instruments
from awa.validation import args_item, encode_json, to_seconds

__all__ = ["Client"]

_ONLY_PARAMS = frozenset({InsertParams})
_queue_of = attrgetter("queue")


class Client:
    """Entry point for producers and operators.

    ``database_url`` defaults to ``AWA_DATABASE_URL``. Use as ``async with Client(url) as c``
    or call ``await c.connect()`` / ``await c.close()``.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        clock: Clock | None = None,
        pool_size: int = 10,
        pool_acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        metrics: Instruments | None = None,
    ) -> None:
        self._url = database_url or database_url_from_env()
        self.clock: Clock = clock or SystemClock()
        self.registry = HandlerRegistry()
        #: Cron schedules declared by this application (published by ``cron_sync``); a
        #: schedule naming no queue fires into its handler's, looked up when published.
        self.cron = CronTable(queue_of=self._handler_queue)
        #: Dead-letter hold: per-queue policies declared here, and the operator API.
        self.dlq = DeadLetters(self)
        #: Resolve parked jobs' callbacks: complete / fail / retry / heartbeat.
        self.callbacks = Callbacks(self)
        self.queues = Queues(self)
        self.queue_descriptions: dict[str, str] = {}
        self.pool_size = pool_size
        acquire_timeout = to_seconds("pool_acquire_timeout", pool_acquire_timeout)
        #: How long a call waits for a pooled connection before ``PoolExhausted``.
        self.pool_acquire_timeout: float = (
            DEFAULT_ACQUIRE_TIMEOUT if acquire_timeout is None else acquire_timeout
        )
        self.metrics = metrics or instruments()
        self._store: Store | None = None
        self._templates = Templates()
        #: Dispatchers of this client's running runtimes that take jobs at insert (ADR 045).
        self.local_claims = LocalClaims()

    @property
    def database_url(self) -> str:
        return check_database_url(self._url)

    def set_database_url(self, url: str) -> None:
        """Point an unconnected client at a server (the CLI does this for ``--database-url``)."""
        if self._store is not None:
            raise ConfigError("cannot change database_url of a connected client")
        self._url = check_database_url(url)

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> Self:
        """Open the pool and check the schema is migrated (idempotent)."""
        if self._store is None:
            store = await Store.open(
                self.database_url,
                max_size=self.pool_size,
                acquire_timeout=self.pool_acquire_timeout,
            )
            try:
                async with store.db.connection() as conn:
                    version = await current_version(conn)  # type: ignore[arg-type]
            except BaseException:
                await store.close()
                raise
            latest = MIGRATIONS[-1].version
            if version < latest:
                await store.close()
                raise MigrationError(
                    f"database schema is at version {version}, this awa needs {latest}: "
                    "run `awa migrate` or `await client.migrate()`"
                )
            self._store = store
        return self

    async def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ConfigError("client is not connected: use `async with client` or connect()")
        return self._store

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations (safe to run from several processes at once)."""
        conn = await connect(self.database_url)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    # ------------------------------------------------------------- handlers

    @property
    def handler(self) -> HandlerRegistry:
        """Decorator registering an async handler for a kind:
        ``@client.handler("send_email", queue="mail", timeout=30, args=Email)``.

        ``queue`` is where ``insert`` puts jobs of this kind unless told otherwise;
        ``timeout`` is the default per-attempt limit for them; ``description`` is published
        with the application's declarations (``awa catalog``). ``args`` (a dataclass, a
        pydantic model or a TypedDict) types the job's args: inserts of this kind are
        checked against it, and the handler's ``ctx.args`` is one (``awa.typed_args``).
        The registry itself, whose call is the decorator (``HandlerRegistry.__call__``).
        """
        return self.registry

    def _handler_queue(self, kind: str) -> str | None:
        spec = self.registry.get(kind)
        return None if spec is None else spec.queue

    def describe_queue(self, queue: str, description: str) -> None:
        """Document a queue; published with the application's declarations."""
        InsertParams(kind="x", queue=queue)  # validates the name like an insert would
        self.queue_descriptions[queue] = check_description(description) or ""

    def declarations(self) -> list[dict[str, Any]]:
        """Queues and job kinds this application declares, with their descriptions."""
        queues = {spec.queue for spec in self.registry} | set(self.queue_descriptions)
        rows: list[dict[str, Any]] = [
            {"type": "queue", "name": q, "description": self.queue_descriptions.get(q)}
            for q in sorted(queues)
        ]
        rows += [
            {"type": "kind", "name": s.kind, "description": s.description, "queue": s.queue}
            for s in sorted(self.registry, key=lambda spec: spec.kind)
        ]
        return rows

    # --------------------------------------------------------------- insert

    def params(
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
    ) -> InsertParams:
        """Validated insert parameters, with the registered handler's queue and timeout as
        defaults. ``delay`` is a shorthand for ``run_at = now + delay``. Called inside an
        active span, the span's W3C trace context is added to ``metadata`` (``traceparent``)
        so the job's execution span continues the producer's trace."""
        spec = self.registry.get(kind) if isinstance(kind, str) else None
        if delay is not None:
            if run_at is not None:
                raise ValidationError("delay", delay, "give either run_at or delay, not both")
            seconds = to_seconds("delay", delay, allow_zero=True)
            assert seconds is not None
            run_at = self.clock.now() + timedelta(seconds=seconds)
        if spec is not None and spec.codec is not None:
            spec.codec.check_insert(args)
        metadata = inject_trace_context(metadata)
        # The options a batch repeats are validated once per combination (awa.insert_template);
        # None: unusual types or a mistake, which the full constructor below names.
        job = self._templates.build(
            spec,
            kind,
            args,
            queue,
            priority,
            run_at,
            max_attempts,
            tags,
            metadata,
            timeout,
            unique_key,
            unique_scope,
        )
        if job is not None:
            return job
        return InsertParams(
            kind=kind,
            args=args,
            queue=queue if queue is not None else (spec.queue if spec else "default"),
            priority=priority,
            run_at=run_at,
            max_attempts=max_attempts,
            tags=tags,
            metadata=metadata,
            timeout=timeout if timeout is not None else (spec.timeout if spec else None),
            unique_key=unique_key,
            unique_scope=unique_scope,
        )

    async def insert(
        self,
        kind: str,
        args: Any = None,
        *,
        conn: Connection | None = None,
        **options: Unpack[InsertOptions],
    ) -> Job:
        """Insert one job and return it as stored (``job.duplicate`` is True when a job with
        the same ``unique_key`` already held the key and was returned instead).

        Pass ``conn`` (an asyncpg connection, typically inside your own transaction) to make
        the insert part of that transaction: if it rolls back, the job never existed.
        Options (``awa.InsertOptions``, checked by mypy): queue, priority (1 most urgent ..
        4), run_at (aware datetime) or delay, max_attempts (1..1000), tags, metadata,
        timeout (per attempt), unique_key, unique_scope (queued | active | all). ``args``
        is any JSON value, a dataclass or a pydantic model (stored as the JSON object it
        stands for); checked against the handler's ``args=`` type when one is registered.

        With a runtime of this client running here, a job it can start at once is inserted
        already claimed for it and the returned job is ``running`` (ADR 045,
        ``RuntimeConfig.claim_on_insert``).
        """
        params = self.params(kind, args, **options)
        taker = None if conn is not None else self.local_claims.reserve(params, self.clock)
        if taker is not None:  # a runtime of this process runs it at once (ADR 045)
            job = await taker.insert_reserved(self.store, params, self.clock.db_now())
        else:
            job = await self.store.jobs.insert_job(params, conn=conn, now=self.clock.db_now())
        if not job.duplicate:
            self.metrics.inserted.add(1, {"awa.queue": job.queue})
        return job

    async def insert_many(
        self, jobs: Iterable[InsertParams], *, conn: Connection | None = None
    ) -> list[int]:
        """Insert many jobs with one COPY; returns their ids in input order. Build items with
        ``client.params(kind, args, ...)``. All or nothing: one bad item inserts none."""
        items = list(jobs)
        # The per-item checks in C when every item is exactly InsertParams (the usual
        # case); otherwise item by item, naming the first that is not one.
        if not _ONLY_PARAMS.issuperset(map(type, items)):
            for index, item in enumerate(items):
                if not isinstance(item, InsertParams):
                    raise ValidationError(f"jobs[{index}]", item, "expected InsertParams")
        ids = await self.store.jobs.insert_many(items, conn=conn, now=self.clock.db_now())
        for queue, n in Counter(map(_queue_of, items)).items():
            self.metrics.inserted.add(n, {"awa.queue": queue})
        return ids

    async def insert_batch(
        self,
        kind: str,
        args: Iterable[Any],
        *,
        conn: Connection | None = None,
        **options: Unpack[BatchOptions],
    ) -> list[int]:
        """Insert one job of ``kind`` per item of ``args``, every other option shared
        (``awa.BatchOptions``: those of ``insert`` but a unique key), with one COPY; their
        ids in order. The bulk path for many jobs of one kind: the options are checked
        once and no ``InsertParams`` is built per job (``insert_many`` takes jobs that
        differ in more than their args). All or nothing: a bad item (``args[i]`` in the
        error) inserts none. ``args`` is a list (or any iterable) of per-job args, not one
        job's. ``conn``: as for ``insert``."""
        shared: dict[str, Any] = dict(options)
        for option in ("unique_key", "unique_scope"):
            if option in shared:
                reason = "a batch's jobs share their options; keyed jobs: params + insert_many"
                raise ValidationError(option, shared[option], reason)
        if isinstance(args, str | bytes | Mapping | InsertParams):
            raise ValidationError("args", args, "expected an iterable of per-job args")
        items = list(args)
        if not items:
            return []
        if any(isinstance(item, InsertParams) for item in items):
            raise ValidationError("args", items, "InsertParams items: use insert_many")
        first = args_item(0, items[0], lambda item: self.params(kind, item, **options))
        spec = self.registry.get(kind)
        codec = spec.codec if spec is not None else None

        def encoded(item: Any) -> str:
            if codec is not None:
                codec.check_insert(item)
            return encode_json("args", {} if item is None else item)

        texts = [first.args_json]
        texts += [args_item(i, items[i], encoded) for i in range(1, len(items))]
        ids = await self.store.jobs.insert_batch(first, texts, conn=conn, now=self.clock.db_now())
        self.metrics.inserted.add(len(ids), {"awa.queue": first.queue})
        return ids

    # ----------------------------------------------------------------- cron

    def schedule(self, name: str, expression: str, kind: str, **options: Any) -> CronSchedule:
        """Declare a periodic job: ``client.schedule("nightly", "0 3 * * *", "report",
        timezone="Europe/Berlin", misfire="catchup_latest")``. Options: see
        ``awa.cron.CronSchedule`` (args, queue, priority, max_attempts, timezone, misfire,
        catchup_window, max_catchup, overlap, paused, miss_tolerance, tags, metadata).
        Validated now; published to the database by the maintenance leader. Without
        ``queue``, fires go to the queue of the handler registered for ``kind``, whether it
        is registered before or after this call (resolved when published:
        ``CronTable.resolved``)."""
        return self.cron.add(name, expression, kind, **options)

    async def list_schedules(self) -> list[dict[str, Any]]:
        """Every synced schedule with last success, last fire and next fire."""
        return await self.store.cron.cron_list()

    async def pause_schedule(self, name: str) -> None:
        """Stop firing ``name`` until resumed (survives syncs and restarts)."""
        await self.store.cron.cron_set_operator_paused(name, True, self.clock.db_now())

    async def resume_schedule(self, name: str) -> None:
        """Fire ``name`` again from now on (the paused time is not caught up)."""
        await self.store.cron.cron_set_operator_paused(name, False, self.clock.db_now())

    # ---------------------------------------------------------------- admin

    async def get_job(self, job_id: int) -> Job:
        return await self.store.admin.get_job(job_id)

    async def list_jobs(
        self,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        parsed = parse_state(state) if isinstance(state, str) else state
        return await self.store.admin.list_jobs(
            state=parsed, queue=queue, kind=kind, limit=limit, before_id=before_id
        )

    async def cancel_job(self, job_id: int, reason: str = "cancelled by operator") -> Job:
        """Cancel a waiting job now; a running one is stopped at its runtime's next heartbeat
        (the returned job then still shows ``running``)."""
        return await self.store.admin.cancel_job(job_id, reason, self.clock.db_now())

    async def retry_job(self, job_id: int) -> Job:
        """Run a finished, scheduled or retryable job again now."""
        return await self.store.admin.retry_job(job_id, self.clock.db_now())

    async def queue_stats(self) -> list[QueueCount]:
        return await self.store.admin.queue_counts(self.clock.db_now())
