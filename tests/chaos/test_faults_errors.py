"""Issue 14, acceptance: database errors in every background loop, handlers that escape with
a ``BaseException``, progress that turns unserialisable, app-clock skew, colliding ids.

Faults are real PostgreSQL errors raised inside exactly the statements targeted, never
mocks. Triggers on the tables each loop writes call ``fault_fire(target)``, which does
nothing unless ``fault_plan`` names that target, and otherwise, per mode:

- ``statement_timeout``: sleeps; the database's ``statement_timeout`` (300 ms, set for
  every new session of the test database before the runtime connects) cancels it: 57014.
- ``query_canceled``: sleeps; the test ``pg_cancel_backend``s it: 57014.
- ``lock_timeout``: waits for a row the test holds locked, under ``lock_timeout``: 55P03.
- ``read_only``: turns the transaction read-only, then writes: 25006.
- ``admin_shutdown``: sleeps; the test ``pg_terminate_backend``s it: 57P01.

Targets: ``heartbeat`` (running -> running UPDATE of ``awa.jobs``), ``flush`` (the completion
flush's DELETE/UPDATE of a running job), ``claim`` (available -> running), ``liveness``
(UPDATE of ``awa.runtimes``), ``promote_scheduled`` (scheduled -> available). Every
*other* maintenance branch is reached through the term fence each of its transactions opens
with (``SELECT ... FROM awa.leader_term FOR SHARE``): the test holds that row locked, so the
fence waits and is ended by the statement or lock timeout, the cancel, or the terminate. A
``SELECT FOR SHARE`` cannot be made read-only from outside, so the read-only mode reaches
the hygiene branches that write on every run through statement triggers on their tables
(``queue_stats``, ``refresh_admin_metadata``).

Errors are read from the exported metrics (an OpenTelemetry ``InMemoryMetricReader`` behind
``awa.Client(metrics=Instruments(MeterProvider(...)))``): ``awa.runtime.loop.errors`` by
``awa.runtime.loop`` and ``error.type``, ``awa.maintenance.branch.errors`` by branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

import awa
from awa.clock import SystemClock
from awa.config import MaintenanceConfig
from awa.errors import DatabaseUnavailable, RuntimeStateError, ValidationError
from awa.handlers import Handler
from awa.maintenance.builtin import BUILTIN_BRANCHES
from awa.store import Store
from awa.telemetry import Instruments

# ------------------------------------------------------------------------- fault plumbing

FAULT_SQL = r"""
CREATE TABLE public.fault_plan (target text PRIMARY KEY, mode text NOT NULL);
CREATE TABLE public.fault_block (id int PRIMARY KEY);
INSERT INTO public.fault_block VALUES (1);
CREATE TABLE public.fault_scratch (target text);

CREATE FUNCTION public.fault_fire(p_target text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m text;
BEGIN
    SELECT mode INTO m FROM public.fault_plan WHERE target = p_target;
    IF m IS NULL THEN
        RETURN;
    ELSIF m = 'lock_timeout' THEN
        PERFORM set_config('lock_timeout', '100ms', true);
        PERFORM 1 FROM public.fault_block FOR UPDATE;  -- held by the test
    ELSIF m = 'read_only' THEN
        PERFORM set_config('transaction_read_only', 'on', true);
        INSERT INTO public.fault_scratch VALUES (p_target);
    ELSE
        PERFORM pg_sleep(5);  -- ended by statement_timeout, pg_cancel or pg_terminate
    END IF;
END $$;

CREATE FUNCTION public.fault_jobs_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.state = 'running' THEN
            PERFORM public.fault_fire('flush');
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.state = 'running' AND NEW.state = 'running' THEN
        PERFORM public.fault_fire('heartbeat');
    ELSIF OLD.state = 'available' AND NEW.state = 'running' THEN
        PERFORM public.fault_fire('claim');
    ELSIF OLD.state IN ('scheduled', 'retryable') AND NEW.state = 'available' THEN
        PERFORM public.fault_fire('promote_scheduled');
    ELSIF OLD.state = 'running' THEN
        PERFORM public.fault_fire('flush');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fault_jobs BEFORE UPDATE OR DELETE ON awa.jobs
    FOR EACH ROW EXECUTE FUNCTION public.fault_jobs_row();

CREATE FUNCTION public.fault_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.fault_fire(TG_ARGV[0]);
    RETURN NEW;
END $$;
CREATE TRIGGER fault_liveness BEFORE UPDATE ON awa.runtimes
    FOR EACH ROW EXECUTE FUNCTION public.fault_row('liveness');

CREATE FUNCTION public.fault_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.fault_fire(TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER fault_queue_stats BEFORE INSERT ON awa.queue_stats
    FOR EACH STATEMENT EXECUTE FUNCTION public.fault_statement('queue_stats');
CREATE TRIGGER fault_admin_metadata BEFORE INSERT ON awa.admin_metadata
    FOR EACH STATEMENT EXECUTE FUNCTION public.fault_statement('refresh_admin_metadata');
"""


@dataclass(frozen=True)
class Mode:
    """How one fault mode shows: the awa error type counted, fragments of the logged error
    (SQLSTATE and the server's words), how the test ends the sleeping statement, and the
    database settings every new session gets."""

    error_type: str
    fragments: tuple[str, ...]
    kill: str | None = None
    settings: tuple[tuple[str, str], ...] = ()


MODES: dict[str, Mode] = {
    "statement_timeout": Mode(
        "DatabaseBusy", ("(57014)", "statement timeout"), settings=(("statement_timeout", "300ms"),)
    ),
    "lock_timeout": Mode(
        "DatabaseBusy", ("(55P03)", "lock timeout"), settings=(("lock_timeout", "150ms"),)
    ),
    "query_canceled": Mode("DatabaseBusy", ("(57014)", "user request"), kill="pg_cancel_backend"),
    "read_only": Mode("DatabaseBusy", ("(25006)", "read-only transaction")),
    "admin_shutdown": Mode(
        "DatabaseUnavailable", ("administrator command",), kill="pg_terminate_backend"
    ),
}

LOOP_ERRORS = ("awa.runtime.loop.errors", "awa.runtime.loop")
BRANCH_ERRORS = ("awa.maintenance.branch.errors", "awa.maintenance.branch")
#: Hygiene branches whose every run writes a table a statement trigger can fail read-only.
#: (Not cleanup: with the default retentions it deletes nothing, the ring reclaims history
#: by TRUNCATE, ADR 035.)
READ_ONLY_BRANCHES = ("queue_stats", "refresh_admin_metadata")


class Faults:
    """The test's side of the injection: the plan, the rows it holds locked, the killer."""

    def __init__(
        self, mode: str, control: asyncpg.Connection, blocker: asyncpg.Connection, killer: Any
    ) -> None:
        self.mode = mode
        self.control = control
        self.blocker = blocker
        self.killer: asyncpg.Connection = killer
        self.kills = 0

    @classmethod
    async def open(cls, url: str, mode: str) -> Faults:
        control = await asyncpg.connect(url)
        blocker = await asyncpg.connect(url)
        killer = await asyncpg.connect(url)
        return cls(mode, control, blocker, killer)

    async def close(self) -> None:
        for conn in (self.control, self.blocker, self.killer):
            await conn.close()

    @contextlib.asynccontextmanager
    async def inject(self, *targets: str, fence: bool = False) -> AsyncIterator[None]:
        """Fail the statements of ``targets`` (and, with ``fence``, every maintenance
        transaction: the term row is held locked) until the block ends."""
        spec = MODES[self.mode]
        await self.control.executemany(
            "INSERT INTO public.fault_plan VALUES ($1, $2)", [(t, self.mode) for t in targets]
        )
        tx = self.blocker.transaction()
        await tx.start()
        if self.mode == "lock_timeout":
            await self.blocker.execute("SELECT 1 FROM public.fault_block FOR UPDATE")
        if fence:
            await self.blocker.execute("SELECT 1 FROM awa.leader_term FOR UPDATE")
        stop = anyio.Event()
        killing = asyncio.ensure_future(self._kill(spec.kill, stop)) if spec.kill else None
        try:
            yield
        finally:
            stop.set()
            if killing is not None:
                await killing
            await self.control.execute("DELETE FROM public.fault_plan")
            await tx.rollback()

    async def _kill(self, fn: str, stop: anyio.Event) -> None:
        """End every statement sleeping in ``fault_fire`` or waiting for our locks."""
        blocker = self.blocker.get_server_pid()
        while not stop.is_set():
            hits = await self.killer.fetchval(
                f"""SELECT count(*) FROM (
                        SELECT {fn}(pid) AS hit FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()
                           AND (wait_event = 'PgSleep' OR $1 = ANY (pg_blocking_pids(pid)))
                    ) k WHERE hit""",
                blocker,
            )
            self.kills += int(hits)
            with anyio.move_on_after(0.02):
                await stop.wait()


def error_counts(reader: InMemoryMetricReader, metric: tuple[str, str]) -> Counter[tuple[str, str]]:
    """(loop or branch, error.type) -> count, as exported."""
    name, label = metric
    out: Counter[tuple[str, str]] = Counter()
    data = reader.get_metrics_data()
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for m in scope.metrics:
                if m.name != name:
                    continue
                for point in m.data.data_points:
                    if isinstance(point, NumberDataPoint):
                        attrs = dict(point.attributes or {})
                        key = (str(attrs.get(label)), str(attrs.get("error.type")))
                        out[key] += int(point.value)
    return out


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await anyio.sleep(0.02)


async def states(conn: asyncpg.Connection, ids: list[int]) -> list[str]:
    rows = await conn.fetch("SELECT id, state::text AS s FROM awa.all_jobs WHERE id = ANY($1)", ids)
    by_id = {int(r["id"]): str(r["s"]) for r in rows}
    return [by_id.get(i, "missing") for i in ids]


def fast_maintenance(**overrides: Any) -> MaintenanceConfig:
    options: dict[str, Any] = {
        "startup_jitter": 0,
        "election_interval": 0.2,
        "leader_check_interval": 0.5,
    }
    options.update(overrides)
    return MaintenanceConfig(**options)


# ------------------------------------------------------------------ 1. database errors


@pytest.mark.parametrize("mode", list(MODES))
async def test_database_error_in_every_loop_is_survived_counted_and_loses_nothing(
    database_url: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = MODES[mode]
    caplog.set_level(logging.WARNING)
    database = urlsplit(database_url).path.lstrip("/")
    setup = await asyncpg.connect(database_url)
    try:
        await setup.execute(FAULT_SQL)
        for name, value in spec.settings:  # for every session opened from now on
            await setup.execute(f"ALTER DATABASE \"{database}\" SET {name} = '{value}'")
    finally:
        await setup.close()

    reader = InMemoryMetricReader()
    client = awa.Client(database_url, metrics=Instruments(MeterProvider(metric_readers=[reader])))
    executions: Counter[int] = Counter()
    gates: dict[str, anyio.Event] = {"hb": anyio.Event()}

    @client.handler("hold")
    async def hold(ctx: awa.JobContext) -> None:
        executions[ctx.job.id] += 1
        await gates[ctx.args["gate"]].wait()

    @client.handler("quick")
    async def quick(ctx: awa.JobContext) -> None:
        executions[ctx.job.id] += 1

    config = awa.RuntimeConfig(
        queues={"default": 8},
        poll_interval=0.2,
        heartbeat_interval=0.1,
        liveness_interval=0.2,
        presence_beat_interval=0.1,
        shutdown_grace=2.0,
        # The claim loop is under test: jobs inserted here must wait for it, not be
        # claimed by the insert (ADR 045; its faults: tests/local_claims/).
        claim_on_insert=False,
    )
    every_branch_fast = {b.name: 0.3 for b in BUILTIN_BRANCHES}
    maintenance = fast_maintenance(intervals=every_branch_fast)
    timings: dict[str, float] = {}

    async with client:
        runtime = awa.Runtime(client, config, maintenance=maintenance)
        await runtime.start()
        faults = await Faults.open(database_url, mode)
        control = faults.control
        ids: list[int] = []

        async def insert(n: int, kind: str = "quick", **options: Any) -> list[int]:
            new = [(await client.insert(kind, **options)).id for _ in range(n)]
            ids.extend(new)
            return new

        async def settle(batch: list[int], timeout: float = 15.0) -> None:
            async def done() -> bool:
                return set(await states(control, batch)) == {"completed"}

            await eventually(done, timeout, f"jobs {batch} completed")

        async def counted(metric: tuple[str, str], name: str, n: int = 2) -> None:
            async def enough() -> bool:
                return error_counts(reader, metric)[(name, spec.error_type)] >= n

            await eventually(enough, 10.0, f"{n} {spec.error_type} counted for {name}")

        try:
            leader = runtime.leader
            assert leader is not None
            with anyio.fail_after(10):
                await leader.wait_until_leader()

            # heartbeat: two jobs keep running while every beat fails
            started = time.monotonic()
            held = await insert(2, "hold", args={"gate": "hb"})

            async def holding() -> bool:
                return len(runtime.inflight) >= 2

            await eventually(holding, 10.0, "both held jobs running")
            async with faults.inject("heartbeat"):
                await counted(LOOP_ERRORS, "heartbeat")
                await settle(await insert(1))  # the runtime keeps processing meanwhile
            gates["hb"].set()
            await settle(held)
            timings["heartbeat"] = time.monotonic() - started

            # flush: the results stay buffered (jobs still running), then land
            started = time.monotonic()
            async with faults.inject("flush"):
                batch = await insert(2)
                await counted(LOOP_ERRORS, "flush")
                assert await states(control, batch) == ["running", "running"]
            await settle(batch)
            timings["flush"] = time.monotonic() - started

            # claim: the jobs stay available, then are claimed
            started = time.monotonic()
            async with faults.inject("claim"):
                batch = await insert(2)
                await counted(LOOP_ERRORS, "claim:default")
                assert await states(control, batch) == ["available", "available"]
            await settle(batch)
            timings["claim"] = time.monotonic() - started

            # liveness: the runtime row cannot be beaten; work goes on
            started = time.monotonic()
            async with faults.inject("liveness"):
                await counted(LOOP_ERRORS, "liveness")
                await settle(await insert(1))
            timings["liveness"] = time.monotonic() - started

            # promote_scheduled: the due job stays scheduled, then is promoted
            started = time.monotonic()
            async with faults.inject("promote_scheduled"):
                due = await insert(1, delay=0.2)
                await counted(BRANCH_ERRORS, "promote_scheduled")
                assert await states(control, due) == ["scheduled"]
            await settle(due)
            timings["promote_scheduled"] = time.monotonic() - started

            # every other branch
            started = time.monotonic()
            if mode == "read_only":
                branches = set(READ_ONLY_BRANCHES)
                async with faults.inject(*READ_ONLY_BRANCHES):
                    for name in READ_ONLY_BRANCHES:
                        await counted(BRANCH_ERRORS, name, n=1)
            else:
                branches = set(leader.stats)
                before = error_counts(reader, BRANCH_ERRORS)

                async def every_branch_failed() -> bool:
                    now = error_counts(reader, BRANCH_ERRORS)
                    return all(
                        now[(b, spec.error_type)] > before[(b, spec.error_type)] for b in branches
                    )

                async with faults.inject(fence=True):
                    await eventually(every_branch_failed, 20.0, f"every branch of {branches}")
            timings["branches"] = time.monotonic() - started

            # nothing lost, nothing run twice, the runtime never stopped
            await settle(ids)
            assert runtime.state == "running" and runtime.failure is None
            assert runtime.presence is not None and runtime.presence.losses == 0
            assert {executions[i] for i in ids} == {1}, executions
        finally:
            for gate in gates.values():
                gate.set()
            await faults.close()
            await runtime.shutdown()
        assert runtime.failure is None

    loops = error_counts(reader, LOOP_ERRORS)
    branch_errors = error_counts(reader, BRANCH_ERRORS)
    print(
        f"\n[{mode}] loop errors {dict(loops)}\n[{mode}] branch errors {dict(branch_errors)}"
        f"\n[{mode}] kills {faults.kills}; jobs {len(ids)} all completed once; phase seconds "
        + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
    )
    # Every error of every targeted loop has the mode's type: classified, not a surprise.
    for loop in ("heartbeat", "flush", "claim:default", "liveness"):
        kinds = {t for (name, t), n in loops.items() if name == loop and n}
        assert kinds == {spec.error_type}, (loop, kinds)
    for name in branches | {"promote_scheduled"}:
        kinds = {t for (b, t), n in branch_errors.items() if b == name and n}
        assert kinds == {spec.error_type}, (name, kinds)
    # The logged errors carry the server's SQLSTATE and words; none was "unexpected".
    messages = [r.getMessage() for r in caplog.records]
    logged = ["heartbeat for", "flushing", "claim on queue", "liveness beat"]
    if mode != "admin_shutdown":  # see test_terminated_transaction_reports_its_real_cause
        logged.append("maintenance branch promote_scheduled")
    for what in logged:
        assert any(what in m and all(f in m for f in spec.fragments) for m in messages), what
    assert not [m for m in messages if "unexpectedly" in m]


# -------------------------------------------------- 2. handlers escaping BaseException


async def leak_cancelled() -> None:
    raise asyncio.CancelledError()


async def leak_cancelled_future() -> None:
    """Await a future another callback cancels: CancelledError without awa cancelling."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    loop.call_soon(future.cancel)
    await future


async def system_exit() -> None:
    raise SystemExit(3)


async def keyboard_interrupt() -> None:
    raise KeyboardInterrupt


ESCAPES: dict[str, tuple[Callable[[], Awaitable[None]], str]] = {
    "leak_cancelled": (leak_cancelled, "CancelledError"),
    "leak_cancelled_future": (leak_cancelled_future, "CancelledError"),
    "system_exit": (system_exit, "SystemExit"),
    "keyboard_interrupt": (keyboard_interrupt, "KeyboardInterrupt"),
}


async def test_handler_escaping_with_a_base_exception_fails_only_its_attempt(
    database_url: str,
) -> None:
    """Each escape fails attempt 1 on runtime A (HandlerEscaped, retryable); A keeps running
    other jobs; A stops cleanly; runtime B runs attempt 2, where the handler behaves."""
    seen: list[tuple[str, int, int]] = []  # (runtime, job id, attempt)

    def escaping(who: str, escape: Callable[[], Awaitable[None]]) -> Handler:
        async def handler(ctx: awa.JobContext) -> str:
            seen.append((who, ctx.job.id, ctx.job.attempt))
            if ctx.job.attempt == 1:
                await escape()
            return "ok"

        return handler

    def register(client: awa.Client, who: str) -> None:
        for kind, (escape, _) in ESCAPES.items():
            client.handler(kind)(escaping(who, escape))

        @client.handler("quick")
        async def quick(ctx: awa.JobContext) -> None:
            seen.append((who, ctx.job.id, ctx.job.attempt))

    client_a, client_b = awa.Client(database_url), awa.Client(database_url)
    register(client_a, "A")
    register(client_b, "B")
    # Retries are due 2 s after the failure: A has stopped by then, so B runs attempt 2.
    config = awa.RuntimeConfig(
        queues={"default": 8},
        poll_interval=0.2,
        heartbeat_interval=0.2,
        backoff=awa.Backoff(base=2.0, cap=2.0, jitter=0.0),
    )
    async with client_a, client_b:
        control = await asyncpg.connect(database_url)
        try:
            a = awa.Runtime(client_a, config, maintenance=fast_maintenance())
            await a.start()
            try:
                started = time.monotonic()
                escaped = {k: (await client_a.insert(k, max_attempts=3)).id for k in ESCAPES}
                ids = list(escaped.values())

                async def all_retryable() -> bool:
                    return set(await states(control, ids)) == {"retryable"}

                await eventually(all_retryable, 10.0, "every escaped attempt failed, retryable")
                failed_after = time.monotonic() - started
                quick = [(await client_a.insert("quick")).id for _ in range(3)]

                async def quick_done() -> bool:
                    return set(await states(control, quick)) == {"completed"}

                await eventually(quick_done, 10.0, "runtime A keeps processing")
                assert a.state == "running" and a.failure is None
            finally:
                await a.shutdown()
            assert a.failure is None
            for kind, job_id in escaped.items():
                row = await control.fetchrow(
                    "SELECT state::text AS s, attempt, errors FROM awa.jobs WHERE id = $1", job_id
                )
                assert row is not None and row["s"] == "retryable" and row["attempt"] == 1, kind
                error = json.loads(row["errors"])[-1]
                assert error["type"] == "HandlerEscaped", error
                assert error["attempt"] == 1 and error["kind"] == "exception"
                assert f"handler raised {ESCAPES[kind][1]}" in error["message"], error

            b = awa.Runtime(client_b, config, maintenance=fast_maintenance())
            await b.start()
            try:
                retried = time.monotonic()

                async def all_done() -> bool:
                    return set(await states(control, ids)) == {"completed"}

                await eventually(all_done, 15.0, "runtime B completes every retry")
                retried_after = time.monotonic() - retried
                assert b.state == "running" and b.failure is None
            finally:
                await b.shutdown()
            rows = await control.fetch(
                "SELECT id, attempt, claimed_by FROM awa.jobs_done WHERE id = ANY($1)", ids
            )
        finally:
            await control.close()
    assert {(int(r["id"]), r["attempt"], r["claimed_by"]) for r in rows} == {
        (i, 2, b.instance_id) for i in ids
    }
    for job_id in ids:
        assert [(w, n) for w, i, n in seen if i == job_id] == [("A", 1), ("B", 2)], seen
    print(
        f"\n[escapes] {len(ESCAPES)} escaped attempts failed on A within {failed_after:.2f}s; "
        f"A ran {len(quick)} other jobs and stopped cleanly; B completed every retry "
        f"(attempt 2) {retried_after:.2f}s after it started"
    )


# ------------------------------------------------------------ 3. progress snapshots


async def test_progress_mutated_after_set_progress_keeps_the_snapshot(database_url: str) -> None:
    client = awa.Client(database_url)
    release = anyio.Event()
    observed: dict[str, Any] = {}
    snapshot = {"step": 1, "items": [1, 2]}

    @client.handler("progress")
    async def progress(ctx: awa.JobContext) -> None:
        value: dict[str, Any] = {"step": 1, "items": [1, 2]}
        ctx.set_progress(value)
        # Everything below would make the value unserialisable (or change it) if the
        # heartbeat serialised the live object.
        value["step"] = 2
        value["items"].append(object())
        value["self"] = value
        observed["seen"] = ctx.progress
        try:
            ctx.set_progress({"bad": object()})
        except Exception as exc:  # refused at the call, the last snapshot stays
            observed["refused"] = exc
        await release.wait()
        value["late"] = {1, 2}

    @client.handler("quick")
    async def quick(ctx: awa.JobContext) -> None:
        pass

    config = awa.RuntimeConfig(queues={"default": 4}, poll_interval=0.2, heartbeat_interval=0.1)
    async with client:
        control = await asyncpg.connect(database_url)
        runtime = awa.Runtime(client, config, run_maintenance=False)
        await runtime.start()
        try:
            job = (await client.insert("progress")).id

            async def stored() -> bool:
                value = await control.fetchval("SELECT progress FROM awa.jobs WHERE id = $1", job)
                return value is not None and json.loads(value) == snapshot

            await eventually(stored, 10.0, "the snapshot written by a heartbeat")
            assert runtime.heartbeat is not None
            beats = runtime.heartbeat.beats

            async def beating() -> bool:
                assert runtime.heartbeat is not None
                return runtime.heartbeat.beats >= beats + 3

            await eventually(beating, 10.0, "heartbeats go on with the mutated object around")
            others = [(await client.insert("quick")).id for _ in range(3)]

            async def others_done() -> bool:
                return set(await states(control, others)) == {"completed"}

            await eventually(others_done, 10.0, "unrelated jobs complete")
            release.set()

            async def finished() -> bool:
                return await states(control, [job]) == ["completed"]

            await eventually(finished, 10.0, "the progress job completes")
            final = json.loads(
                await control.fetchval("SELECT progress FROM awa.all_jobs WHERE id = $1", job)
            )
            assert runtime.state == "running" and runtime.failure is None
        finally:
            release.set()
            await runtime.shutdown()
            await control.close()
    assert runtime.failure is None
    assert final == snapshot
    assert observed["seen"] == snapshot
    assert isinstance(observed["refused"], ValidationError), observed["refused"]
    print(f"\n[progress] stored {final} after {runtime.heartbeat.beats} heartbeats")


# ---------------------------------------------------------------- 4. app-clock skew


class SkewedClock(SystemClock):
    """The real clock, shifted: an application host whose clock is off."""

    def __init__(self, skew: float) -> None:
        self.skew = timedelta(seconds=skew)

    def now(self) -> datetime:
        return super().now() + self.skew


@pytest.mark.parametrize("skew", [0.0, 5.0, -5.0])
async def test_app_clock_skew_keeps_promotion_at_its_normal_rate(
    database_url: str, skew: float
) -> None:
    """A job due 8 s ahead and one due 1 s ahead (by the database clock) under an app clock
    off by ``skew``: promote_scheduled runs a handful of times in 6 s, not hundreds, and
    both jobs are promoted on time (skew 0 is the reference)."""
    client = awa.Client(database_url, clock=SkewedClock(skew))

    @client.handler("tick")
    async def tick(ctx: awa.JobContext) -> None:
        pass

    config = awa.RuntimeConfig(queues={"default": 2}, poll_interval=0.5)
    async with client:
        control = await asyncpg.connect(database_url)
        runtime = awa.Runtime(client, config, maintenance=fast_maintenance())
        await runtime.start()
        try:
            leader = runtime.leader
            assert leader is not None
            with anyio.fail_after(10):
                await leader.wait_until_leader()
            db_now: datetime = await control.fetchval("SELECT now()")
            far = (await client.insert("tick", run_at=db_now + timedelta(seconds=8))).id
            near = (await client.insert("tick", run_at=db_now + timedelta(seconds=1))).id
            runs_before = leader.stats["promote_scheduled"].runs
            started = time.monotonic()

            async def near_done() -> bool:
                return await states(control, [near]) == ["completed"]

            await eventually(near_done, 7.0, "the job due in 1 s is promoted and run")
            await anyio.sleep(max(0.0, started + 6.0 - time.monotonic()))
            runs = leader.stats["promote_scheduled"].runs - runs_before

            async def far_done() -> bool:
                return await states(control, [far]) == ["completed"]

            await eventually(far_done, 8.0, "the job due in 8 s is promoted and run")
            rows = await control.fetch(
                "SELECT id, extract(epoch FROM attempted_at - run_at)::float8 AS late"
                "  FROM awa.all_jobs WHERE id = ANY($1)",
                [near, far],
            )
            assert runtime.state == "running" and runtime.failure is None
        finally:
            await runtime.shutdown()
            await control.close()
    late = {int(r["id"]): float(r["late"]) for r in rows}
    print(
        f"\n[skew {skew:+.0f}s] promote_scheduled runs in 6 s: {runs}; lateness: due in 1 s "
        f"{late[near] * 1000:.0f} ms, due in 8 s {late[far] * 1000:.0f} ms"
    )
    assert runs <= 10, runs
    assert late[far] < 1.0, late
    assert late[near] < 1.0, late


# ------------------------------------------------------------------ 5. instance ids


async def test_one_config_gives_distinct_ids_and_a_colliding_id_is_refused_quickly(
    database_url: str,
) -> None:
    client = awa.Client(database_url)

    @client.handler("quick")
    async def quick(ctx: awa.JobContext) -> None:
        pass

    config = awa.RuntimeConfig(queues={"default": 2}, poll_interval=0.2)
    fixed = awa.RuntimeConfig(queues={"default": 2}, poll_interval=0.2, instance_id="fixed-id")
    other = awa.RuntimeConfig(queues={"other": 1}, poll_interval=0.2, instance_id="fixed-id")
    async with client:
        control = await asyncpg.connect(database_url)
        try:
            one = awa.Runtime(client, config, run_maintenance=False)
            two = awa.Runtime(client, config, run_maintenance=False)
            assert one.instance_id != two.instance_id
            assert config.instance_id is None
            await one.start()
            await two.start()
            try:
                assert one.state == two.state == "running"
                listed = await control.fetch("SELECT instance_id FROM awa.runtimes")
                assert {one.instance_id, two.instance_id} <= {r["instance_id"] for r in listed}
                jobs = [(await client.insert("quick")).id for _ in range(4)]

                async def done() -> bool:
                    return set(await states(control, jobs)) == {"completed"}

                await eventually(done, 10.0, "both runtimes serve")
            finally:
                await one.shutdown()
                await two.shutdown()

            holder = awa.Runtime(client, fixed, run_maintenance=False)
            await holder.start()
            try:
                intruder = awa.Runtime(client, other, run_maintenance=False)
                started = time.monotonic()
                with anyio.fail_after(10), pytest.raises(RuntimeStateError) as refused:
                    await intruder.start()
                elapsed = time.monotonic() - started
                print(
                    f"\n[instance id] colliding start() refused in {elapsed:.3f}s: {refused.value}"
                )
                assert elapsed < 2.0, elapsed
                assert intruder.state == "stopped"
                assert holder.state == "running" and holder.failure is None
                after = (await client.insert("quick")).id

                async def served() -> bool:
                    return await states(control, [after]) == ["completed"]

                await eventually(served, 10.0, "the holder still serves")
            finally:
                await holder.shutdown()
            again = awa.Runtime(client, fixed, run_maintenance=False)
            await again.start()  # the id is free once its holder stopped
            await again.shutdown()
        finally:
            await control.close()


async def test_refused_instance_id_leaves_the_holders_liveness_row_alone(
    database_url: str,
) -> None:
    """A second process given a live runtime's instance id is refused; until then it must
    not have rewritten the holder's ``awa.runtimes`` row (queues, kinds) as its own."""
    holder_client, intruder_client = awa.Client(database_url), awa.Client(database_url)

    @holder_client.handler("mine")
    async def mine(ctx: awa.JobContext) -> None:
        pass

    @intruder_client.handler("theirs")
    async def theirs(ctx: awa.JobContext) -> None:
        pass

    fixed = awa.RuntimeConfig(queues={"default": 2}, instance_id="fixed-id")
    other = awa.RuntimeConfig(queues={"other": 1}, instance_id="fixed-id")
    query = "SELECT queues::text AS q, kinds FROM awa.runtimes WHERE instance_id = 'fixed-id'"
    async with holder_client, intruder_client:
        control = await asyncpg.connect(database_url)
        holder = awa.Runtime(holder_client, fixed, run_maintenance=False)
        await holder.start()
        try:
            before = await control.fetchrow(query)
            intruder = awa.Runtime(intruder_client, other, run_maintenance=False)
            with anyio.fail_after(10), pytest.raises(RuntimeStateError):
                await intruder.start()
            after = await control.fetchrow(query)
        finally:
            await holder.shutdown()
            await control.close()
    assert before is not None and after is not None
    print(f"\n[instance id] holder's row before {dict(before)}, after the refusal {dict(after)}")
    assert (json.loads(after["q"]), list(after["kinds"])) == ({"default": 2}, ["mine"])


async def test_terminated_transaction_reports_its_real_cause(database_url: str) -> None:
    """A statement inside a transaction whose backend is terminated (57P01): the typed error
    names that cause, not asyncpg's failure to leave the transaction on the dead connection
    ("cannot call Transaction.__aexit__(): the underlying connection is closed"), which is
    what every maintenance branch logs today (all but promote_due, which fences itself in
    one statement, run in a fenced transaction)."""
    setup = await asyncpg.connect(database_url)
    try:
        await setup.execute(FAULT_SQL)
    finally:
        await setup.close()
    client = awa.Client(database_url)
    async with client:
        await client.insert("quick", delay=0.05)
        await anyio.sleep(0.2)  # due, still scheduled: nobody promotes here
        store = await Store.open(database_url, min_size=1, max_size=1)
        faults = await Faults.open(database_url, "admin_shutdown")
        try:
            async with faults.inject("promote_scheduled"):
                with anyio.fail_after(10), pytest.raises(DatabaseUnavailable) as caught:
                    await store.maintenance.promote_due(10)
        finally:
            await faults.close()
            await store.close()
    print(f"\n[terminate in a transaction] {caught.value!r}")
    assert faults.kills >= 1
    assert "administrator command" in str(caught.value), caught.value
