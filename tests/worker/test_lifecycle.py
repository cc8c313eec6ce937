"""Job state transitions driven by a real runtime, operator actions, and runtime lifecycle.

Every test talks to a real PostgreSQL (one fresh database per test) and waits on events or
on database conditions under generous ``fail_after`` limits; no wall-clock durations are
asserted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import asyncpg
import pytest

import awa
from awa.clock import utcnow
from awa.store import Store
from awa.store.database import Database
from awa.store.jobs import Jobs
from awa.telemetry import instruments
from awa.worker.completions import CompletionBuffer, PendingResult
from awa.worker.heartbeat import Heartbeat
from awa.worker.inflight import InFlight, InFlightJob, StopReason
from awa.worker.outcomes import Decision

TERMINAL = {awa.JobState.COMPLETED, awa.JobState.FAILED, awa.JobState.CANCELLED}
SETTLED = TERMINAL | {awa.JobState.RETRYABLE, awa.JobState.SCHEDULED}


def make_config(**overrides: Any) -> awa.RuntimeConfig:
    options: dict[str, Any] = {
        "queues": {"default": 4},
        "heartbeat_interval": 0.1,
        "poll_interval": 0.2,
        "shutdown_grace": 5.0,
    }
    options.update(overrides)
    return awa.RuntimeConfig(**options)


async def wait_job(
    client: awa.Client,
    job_id: int,
    predicate: Callable[[awa.Job], bool],
    timeout: float = 10.0,
) -> awa.Job:
    """Poll the job until ``predicate`` holds (the runtime writes results asynchronously)."""
    with anyio.fail_after(timeout):
        while True:
            job = await client.get_job(job_id)
            if predicate(job):
                return job
            await anyio.sleep(0.02)


def settled(job: awa.Job) -> bool:
    return job.state in SETTLED


async def run_one(
    client: awa.Client, config: awa.RuntimeConfig, kind: str, args: Any = None, **options: Any
) -> awa.Job:
    """Insert one job, run a runtime until the job settles, shut down, return the job."""
    async with client:
        job = await client.insert(kind, args, **options)
        async with awa.Runtime(client, config):
            await wait_job(client, job.id, settled)
        return await client.get_job(job.id)


# --------------------------------------------------------------------- handler outcomes


async def test_returned_value_completes_job_and_stores_result(database_url: str) -> None:
    client = awa.Client(database_url)

    @client.handler("double")
    async def double(ctx: awa.JobContext) -> dict[str, int]:
        return {"doubled": ctx.args["n"] * 2}

    job = await run_one(client, make_config(), "double", {"n": 21})
    assert job.state is awa.JobState.COMPLETED
    assert job.result == {"doubled": 42}
    assert job.attempt == 1
    assert job.errors == []
    assert job.finalized_at is not None


async def test_unserialisable_return_value_still_completes_with_repr(database_url: str) -> None:
    client = awa.Client(database_url)

    @client.handler("weird")
    async def weird(ctx: awa.JobContext) -> object:
        return {1, 2}

    job = await run_one(client, make_config(), "weird")
    assert job.state is awa.JobState.COMPLETED
    assert job.result == {"unserialisable_result": repr({1, 2})}


async def test_exception_makes_job_retryable_with_backoff_and_error_record(
    database_url: str,
) -> None:
    clock = awa.FakeClock()
    client = awa.Client(database_url, clock=clock)

    @client.handler("explode")
    async def explode(ctx: awa.JobContext) -> None:
        raise ValueError("boom at step 3")

    config = make_config(backoff=awa.Backoff(base=10.0, jitter=0.0))
    job = await run_one(client, config, "explode", max_attempts=5)

    assert job.state is awa.JobState.RETRYABLE
    assert job.attempt == 1
    assert job.run_at == clock.now() + timedelta(seconds=10)
    assert job.run_at > clock.now()
    assert len(job.errors) == 1
    error = job.errors[0]
    assert error["kind"] == "exception"
    assert error["type"] == "ValueError"
    assert error["message"] == "boom at step 3"
    assert error["attempt"] == 1
    assert "ValueError: boom at step 3" in error["traceback"]
    assert "explode" in error["traceback"]


async def test_exception_on_last_attempt_fails_job(database_url: str) -> None:
    client = awa.Client(database_url)

    @client.handler("explode")
    async def explode(ctx: awa.JobContext) -> None:
        raise RuntimeError("no more tries")

    job = await run_one(client, make_config(), "explode", max_attempts=1)
    assert job.state is awa.JobState.FAILED
    assert job.attempt == 1
    assert job.finalized_at is not None
    assert [e["type"] for e in job.errors] == ["RuntimeError"]
    assert job.errors[0]["message"] == "no more tries"


async def test_errors_accumulate_across_attempts_until_failed(database_url: str) -> None:
    client = awa.Client(database_url)
    calls: list[int] = []

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        calls.append(ctx.job.attempt)
        raise awa.RetryAfter(0, reason=f"attempt {ctx.job.attempt} failed")

    async with client:
        job = await client.insert("flaky", max_attempts=3)
        async with awa.Runtime(client, make_config()):
            # RetryAfter(≈0) reschedules straight to available, so the runtime reclaims it;
            # a tiny positive delay can leave it 'retryable' until promoted, so nudge it.
            with anyio.fail_after(10):
                while True:
                    current = await client.get_job(job.id)
                    if current.state in TERMINAL:
                        break
                    if current.state is awa.JobState.RETRYABLE:
                        with contextlib.suppress(awa.InvalidTransition):
                            await client.retry_job(job.id)
                    await anyio.sleep(0.02)
        job = await client.get_job(job.id)
    assert job.state is awa.JobState.FAILED
    assert calls == [1, 2, 3]
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert [e["message"] for e in job.errors] == [f"attempt {i} failed" for i in (1, 2, 3)]


@pytest.mark.parametrize("mode", ["raise", "return"])
async def test_snooze_schedules_job_and_gives_attempt_back(database_url: str, mode: str) -> None:
    clock = awa.FakeClock()
    client = awa.Client(database_url, clock=clock)

    @client.handler("sleepy")
    async def sleepy(ctx: awa.JobContext) -> awa.Snooze:
        if mode == "raise":
            raise awa.Snooze(timedelta(minutes=2))
        return awa.Snooze(timedelta(minutes=2))

    job = await run_one(client, make_config(), "sleepy", max_attempts=1)
    assert job.state is awa.JobState.SCHEDULED
    assert job.attempt == 0
    assert job.run_at == clock.now() + timedelta(minutes=2)
    assert job.errors == []


@pytest.mark.parametrize("mode", ["raise", "return"])
async def test_cancel_outcome_cancels_job_with_reason(database_url: str, mode: str) -> None:
    client = awa.Client(database_url)

    @client.handler("abandon")
    async def abandon(ctx: awa.JobContext) -> awa.Cancel:
        if mode == "raise":
            raise awa.Cancel("customer deleted their account")
        return awa.Cancel("customer deleted their account")

    job = await run_one(client, make_config(), "abandon", max_attempts=5)
    assert job.state is awa.JobState.CANCELLED
    assert job.finalized_at is not None
    assert job.errors[-1]["kind"] == "cancelled"
    assert job.errors[-1]["message"] == "customer deleted their account"
    assert job.errors[-1]["attempt"] == 1


@pytest.mark.parametrize("mode", ["raise", "return"])
async def test_retry_after_makes_job_retryable_at_exact_delay(database_url: str, mode: str) -> None:
    clock = awa.FakeClock()
    client = awa.Client(database_url, clock=clock)

    @client.handler("later")
    async def later(ctx: awa.JobContext) -> awa.RetryAfter:
        outcome = awa.RetryAfter(timedelta(seconds=90), reason="rate limited")
        if mode == "raise":
            raise outcome
        return outcome

    # a huge backoff proves RetryAfter's delay is used instead of the backoff
    config = make_config(backoff=awa.Backoff(base=3000.0, cap=3600.0, jitter=0.0))
    job = await run_one(client, config, "later", max_attempts=5)
    assert job.state is awa.JobState.RETRYABLE
    assert job.attempt == 1
    assert job.run_at == clock.now() + timedelta(seconds=90)
    assert job.errors[-1]["kind"] == "retry_after"
    assert job.errors[-1]["message"] == "rate limited"


async def test_retry_after_on_last_attempt_fails_job(database_url: str) -> None:
    client = awa.Client(database_url)

    @client.handler("later")
    async def later(ctx: awa.JobContext) -> None:
        raise awa.RetryAfter(60)

    job = await run_one(client, make_config(), "later", max_attempts=1)
    assert job.state is awa.JobState.FAILED
    assert job.errors[-1]["kind"] == "retry_after"


async def test_handler_exceeding_timeout_is_cancelled_and_fails_attempt(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    cancelled = anyio.Event()

    @client.handler("stuck")
    async def stuck(ctx: awa.JobContext) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    job = await run_one(client, make_config(), "stuck", max_attempts=1, timeout=0.2)
    assert cancelled.is_set()
    assert job.state is awa.JobState.FAILED
    assert job.attempt == 1
    assert [e["kind"] for e in job.errors] == ["timeout"]
    assert job.errors[0]["attempt"] == 1


async def test_timeout_with_attempts_left_is_retryable(database_url: str) -> None:
    clock = awa.FakeClock()
    client = awa.Client(database_url, clock=clock)

    @client.handler("stuck", timeout=0.2)
    async def stuck(ctx: awa.JobContext) -> None:
        await anyio.sleep_forever()

    config = make_config(backoff=awa.Backoff(base=30.0, jitter=0.0))
    job = await run_one(client, config, "stuck", max_attempts=3)
    assert job.timeout == pytest.approx(0.2)
    assert job.state is awa.JobState.RETRYABLE
    assert job.attempt == 1
    assert job.run_at == clock.now() + timedelta(seconds=30)
    assert [e["kind"] for e in job.errors] == ["timeout"]
    assert "0.2" in job.errors[0]["message"]


async def test_timeout_from_handler_registration_is_reported_in_error(
    database_url: str,
) -> None:
    async with awa.Client(database_url) as producer:
        job = await producer.insert("stuck", max_attempts=1)  # producer knows no handler
    assert job.timeout is None
    worker = awa.Client(database_url)
    cancelled = anyio.Event()

    @worker.handler("stuck", timeout=0.2)
    async def stuck(ctx: awa.JobContext) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with worker, awa.Runtime(worker, make_config()):
        final = await wait_job(worker, job.id, lambda j: j.state in TERMINAL)
    assert cancelled.is_set()  # the registered limit was enforced
    assert final.state is awa.JobState.FAILED
    assert final.errors[-1]["kind"] == "timeout"
    assert "None" not in final.errors[-1]["message"]
    assert "0.2" in final.errors[-1]["message"]


# ------------------------------------------------------------------- operator actions


async def test_operator_cancel_of_waiting_jobs(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        available = await client.insert("idle")
        scheduled = await client.insert("idle", delay=3600)
        assert scheduled.state is awa.JobState.SCHEDULED

        for job in (available, scheduled):
            cancelled = await client.cancel_job(job.id, reason="not needed anymore")
            assert cancelled.state is awa.JobState.CANCELLED
            assert cancelled.finalized_at is not None
            assert cancelled.errors[-1]["kind"] == "cancelled"
            assert cancelled.errors[-1]["message"] == "not needed anymore"
            assert (await client.get_job(job.id)).state is awa.JobState.CANCELLED

        with pytest.raises(awa.InvalidTransition):
            await client.cancel_job(available.id)
        with pytest.raises(awa.JobNotFound):
            await client.cancel_job(987654321)


async def test_operator_cancel_of_running_job_stops_it_at_next_heartbeat(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()
    stopped = anyio.Event()

    @client.handler("long")
    async def long(ctx: awa.JobContext) -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        return "never"

    async with client:
        job = await client.insert("long", max_attempts=5)
        async with awa.Runtime(client, make_config(heartbeat_interval=0.1)):
            with anyio.fail_after(10):
                await started.wait()
            answer = await client.cancel_job(job.id, reason="operator says stop")
            assert answer.state is awa.JobState.RUNNING
            with anyio.fail_after(10):
                await stopped.wait()
            final = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert final.state is awa.JobState.CANCELLED
    assert final.result is None
    assert final.errors[-1]["kind"] == "cancelled"


async def test_operator_cancel_reason_is_recorded_for_running_job(database_url: str) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()

    @client.handler("long")
    async def long(ctx: awa.JobContext) -> None:
        started.set()
        await anyio.sleep_forever()

    async with client:
        job = await client.insert("long")
        async with awa.Runtime(client, make_config(heartbeat_interval=0.1)):
            with anyio.fail_after(10):
                await started.wait()
            await client.cancel_job(job.id, reason="operator says stop")
            final = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert final.state is awa.JobState.CANCELLED
    assert final.errors[-1]["message"] == "operator says stop"


async def test_operator_cancel_of_running_job_wins_over_failed_attempt(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()
    release = anyio.Event()

    @client.handler("fragile")
    async def fragile(ctx: awa.JobContext) -> None:
        started.set()
        await release.wait()
        raise RuntimeError("failed after the operator asked to cancel")

    async with client:
        job = await client.insert("fragile", max_attempts=5)
        # a long heartbeat: the attempt ends before any heartbeat sees the cancel request
        async with awa.Runtime(client, make_config(heartbeat_interval=30.0)):
            with anyio.fail_after(10):
                await started.wait()
            answer = await client.cancel_job(job.id, reason="stop it")
            assert answer.state is awa.JobState.RUNNING
            release.set()
            final = await wait_job(client, job.id, lambda j: j.state is not awa.JobState.RUNNING)
    assert final.state is awa.JobState.CANCELLED


async def test_retry_job_brings_failed_job_back_with_attempt_zero(database_url: str) -> None:
    client = awa.Client(database_url)
    calls = 0

    @client.handler("once_broken")
    async def once_broken(ctx: awa.JobContext) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first run breaks")
        return "fixed"

    async with client:
        job = await client.insert("once_broken", max_attempts=1)
        async with awa.Runtime(client, make_config()):
            failed = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
        assert failed.state is awa.JobState.FAILED

        again = await client.retry_job(job.id)
        assert again.state is awa.JobState.AVAILABLE
        assert again.attempt == 0
        assert again.id == job.id
        assert len(again.errors) == 1  # history of the failed attempt is kept

        async with awa.Runtime(client, make_config()):
            done = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert done.state is awa.JobState.COMPLETED
    assert done.result == "fixed"
    assert done.attempt == 1
    assert calls == 2


async def test_retry_job_rejects_running_and_unknown_jobs(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        job = await client.insert("k")
        [claimed] = await client.store.jobs.claim_batch("default", ["k"], 1, "someone")
        assert claimed.id == job.id
        with pytest.raises(awa.InvalidTransition):
            await client.retry_job(job.id)
        with pytest.raises(awa.JobNotFound):
            await client.retry_job(987654321)


async def test_progress_is_persisted_by_heartbeat_while_running(database_url: str) -> None:
    client = awa.Client(database_url)
    release = anyio.Event()

    @client.handler("report")
    async def report(ctx: awa.JobContext) -> str:
        ctx.set_progress({"done": 1, "of": 3})
        await release.wait()
        return "ok"

    async with client:
        job = await client.insert("report")
        async with awa.Runtime(client, make_config(heartbeat_interval=0.1)):
            running = await wait_job(client, job.id, lambda j: j.progress is not None)
            assert running.state is awa.JobState.RUNNING
            assert running.progress == {"done": 1, "of": 3}
            assert running.heartbeat_at is not None
            release.set()
            done = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert done.state is awa.JobState.COMPLETED
    assert done.progress == {"done": 1, "of": 3}


async def test_retried_attempt_sees_progress_of_previous_attempt(database_url: str) -> None:
    client = awa.Client(database_url)
    persisted = anyio.Event()
    seen: list[Any] = []

    @client.handler("resumable")
    async def resumable(ctx: awa.JobContext) -> str:
        seen.append(ctx.progress)
        if ctx.job.attempt == 1:
            ctx.set_progress({"checkpoint": 7})
            await persisted.wait()
            raise awa.RetryAfter(0, reason="resume later")
        return "resumed"

    async with client:
        job = await client.insert("resumable", max_attempts=3)
        async with awa.Runtime(client, make_config(heartbeat_interval=0.1)):
            await wait_job(client, job.id, lambda j: j.progress is not None)
            persisted.set()
            done = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert done.state is awa.JobState.COMPLETED
    assert done.attempt == 2
    assert seen == [None, {"checkpoint": 7}]


@pytest.mark.parametrize("ending", ["complete", "fail", "retry"])
async def test_progress_reported_just_before_attempt_ends_is_kept(
    database_url: str, ending: str
) -> None:
    client = awa.Client(database_url)
    seen: list[Any] = []

    @client.handler("checkpointed")
    async def checkpointed(ctx: awa.JobContext) -> str:
        seen.append(ctx.progress)
        if ctx.job.attempt > 1:
            return "second attempt"
        ctx.set_progress({"checkpoint": 42})
        if ending == "fail":
            raise RuntimeError("crash after checkpoint")
        if ending == "retry":
            raise awa.RetryAfter(0, reason="resume from checkpoint")
        return "done"

    async with client:
        job = await client.insert("checkpointed", max_attempts=1 if ending == "fail" else 3)
        # no heartbeat can run during the attempt
        async with awa.Runtime(client, make_config(heartbeat_interval=30.0)):
            final = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert final.progress == {"checkpoint": 42}
    if ending == "retry":
        assert seen == [None, {"checkpoint": 42}]


async def test_set_progress_none_clears_progress_at_attempt_end(database_url: str) -> None:
    client = awa.Client(database_url)
    seen: list[Any] = []

    @client.handler("restart")
    async def restart(ctx: awa.JobContext) -> str:
        seen.append(ctx.progress)
        if ctx.job.attempt == 1:
            ctx.set_progress({"checkpoint": 1})
            raise awa.RetryAfter(0, reason="again")
        ctx.set_progress(None)
        return "from scratch"

    async with client:
        job = await client.insert("restart", max_attempts=3)
        async with awa.Runtime(client, make_config(heartbeat_interval=30.0)):
            final = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert final.state is awa.JobState.COMPLETED
    assert seen == [None, {"checkpoint": 1}]
    assert final.progress is None


async def test_set_progress_none_clears_progress_at_next_heartbeat(database_url: str) -> None:
    client = awa.Client(database_url)
    persisted = anyio.Event()
    cleared = anyio.Event()
    release = anyio.Event()
    seen: list[Any] = []

    @client.handler("restart")
    async def restart(ctx: awa.JobContext) -> str:
        seen.append(ctx.progress)
        if ctx.job.attempt == 1:
            ctx.set_progress({"checkpoint": 1})
            await persisted.wait()
            raise awa.RetryAfter(0, reason="again")
        ctx.set_progress(None)
        cleared.set()
        await release.wait()
        return "from scratch"

    async with client:
        job = await client.insert("restart", max_attempts=3)
        async with awa.Runtime(client, make_config(heartbeat_interval=0.1)):
            await wait_job(client, job.id, lambda j: j.progress == {"checkpoint": 1})
            persisted.set()
            with anyio.fail_after(10):
                await cleared.wait()
            await wait_job(
                client,
                job.id,
                lambda j: j.state is awa.JobState.RUNNING and j.attempt == 2 and j.progress is None,
            )
            release.set()
            final = await wait_job(client, job.id, lambda j: j.state in TERMINAL)
    assert seen == [None, {"checkpoint": 1}]
    assert final.state is awa.JobState.COMPLETED
    assert final.progress is None


async def test_progress_taken_by_a_heartbeat_is_still_handed_to_the_final_write() -> None:
    now = utcnow()
    job = awa.Job(1, "k", "default", {}, awa.JobState.RUNNING, 2, 1, 3, now, now)
    untouched = InFlightJob(job, awa.JobContext(job))
    assert untouched.hand_over() == (False, None)
    entry = InFlightJob(job, awa.JobContext(job))
    entry.context.set_progress({"step": 3})
    # a heartbeat took it; its statement may lose the race with the completion flush
    assert entry.take_progress() == (True, {"step": 3})
    assert entry.hand_over() == (True, {"step": 3})
    assert entry.result_buffered


async def test_set_progress_rejects_non_json(database_url: str) -> None:
    client = awa.Client(database_url)
    seen: list[BaseException] = []

    @client.handler("report")
    async def report(ctx: awa.JobContext) -> None:
        try:
            ctx.set_progress({"bad": float("nan")})
        except awa.ValidationError as exc:
            seen.append(exc)

    job = await run_one(client, make_config(), "report")
    assert job.state is awa.JobState.COMPLETED
    assert len(seen) == 1
    assert isinstance(seen[0], awa.ValidationError)
    assert seen[0].field == "progress"


# ------------------------------------------------- heartbeat racing our own completion flush


class WindowJobs(Jobs):
    """The real jobs part, with a hook run right after a completion statement returns: the
    window in which the flush has committed but not yet dropped the job from ``InFlight``. It
    also keeps what each heartbeat answered."""

    in_window: Callable[[], Awaitable[None]] | None = None
    lost: list[set[int]]

    async def complete_batch(self, *args: Any, **kwargs: Any) -> set[int]:
        applied = await super().complete_batch(*args, **kwargs)
        if self.in_window is not None:
            await self.in_window()
        return applied

    async def heartbeat(self, *args: Any, **kwargs: Any) -> tuple[set[int], dict[int, str | None]]:
        lost, cancel = await super().heartbeat(*args, **kwargs)
        self.lost.append(lost)
        return lost, cancel


class WindowStore(Store):
    """The real store, its ``jobs`` part a ``WindowJobs``."""

    jobs: WindowJobs

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.jobs = WindowJobs(db)


@contextlib.asynccontextmanager
async def worker_parts(
    database_url: str,
) -> AsyncIterator[tuple[WindowStore, InFlight, CompletionBuffer, Heartbeat]]:
    store = WindowStore((await Store.open(database_url, max_size=3)).db)
    store.jobs.lost = []
    inflight = InFlight()
    clock = awa.SystemClock()
    buffer = CompletionBuffer(store, inflight, clock, instruments(), flush_interval=60.0, batch=100)
    try:
        yield store, inflight, buffer, Heartbeat(store, inflight, clock, interval=60.0)
    finally:
        await store.close()


async def claim_one(store: Store, inflight: InFlight) -> InFlightJob:
    await store.jobs.insert_job(awa.InsertParams("work", {}))
    (job,) = await store.jobs.claim_batch("default", ["work"], 1, "runtime-test")
    entry = InFlightJob(job, awa.JobContext(job))
    inflight.add(entry)
    return entry


async def test_heartbeat_does_not_report_a_job_our_own_flush_just_finished(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="awa.worker")
    async with worker_parts(database_url) as (store, inflight, buffer, heartbeat):
        entry = await claim_one(store, inflight)
        done = Decision(awa.JobState.COMPLETED, "completed", result={"ok": True})
        buffer.add(PendingResult(entry.job.id, entry.job.run_lease, "default", done))
        store.jobs.in_window = heartbeat.beat
        await buffer.flush()
    assert store.jobs.lost == [{entry.job.id}]  # the beat ran in the window and saw the row gone
    assert entry.stop_reason is None
    assert not entry.scope.cancel_called
    assert (buffer.applied, buffer.stale) == (1, 0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_heartbeat_stops_a_running_job_that_was_taken_over(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="awa.worker")
    async with worker_parts(database_url) as (store, inflight, _buffer, heartbeat):
        entry = await claim_one(store, inflight)
        async with store.db.connection() as conn:  # rescued and re-claimed elsewhere
            await conn.execute(
                "UPDATE awa.jobs SET run_lease = run_lease + 1 WHERE id = $1", entry.job.id
            )
        await heartbeat.beat()
    assert store.jobs.lost == [{entry.job.id}]
    assert entry.stop_reason is StopReason.LOST
    assert entry.scope.cancel_called
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"job {entry.job.id} was taken over elsewhere; stopping it here"]


# -------------------------------------------------------------------- runtime lifecycle


async def test_shutdown_waits_for_in_flight_handler_and_records_result(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()
    finished = anyio.Event()

    @client.handler("slow")
    async def slow(ctx: awa.JobContext) -> str:
        started.set()
        await anyio.sleep(0.3)
        finished.set()
        return "finished in time"

    async with client:
        job = await client.insert("slow")
        runtime = await awa.Runtime(client, make_config(shutdown_grace=30.0)).start()
        with anyio.fail_after(10):
            await started.wait()
        assert not finished.is_set()
        await runtime.shutdown()
        assert finished.is_set()
        assert runtime.state == "stopped"
        # shutdown() flushed the result before returning: no waiting needed
        stored = await client.get_job(job.id)
    assert stored.state is awa.JobState.COMPLETED
    assert stored.result == "finished in time"


async def test_shutdown_after_grace_requeues_stuck_job_without_losing_it(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()
    stopped = anyio.Event()

    @client.handler("forever")
    async def forever(ctx: awa.JobContext) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()

    async with client:
        job = await client.insert("forever", max_attempts=3)
        runtime = await awa.Runtime(client, make_config()).start()
        with anyio.fail_after(10):
            await started.wait()
        with anyio.fail_after(20):
            await runtime.shutdown(grace=0.05)
        assert stopped.is_set()
        stored = await client.get_job(job.id)
    assert stored.state is awa.JobState.AVAILABLE
    assert stored.attempt == 0
    assert stored.claimed_by is None
    assert stored.errors == []


async def test_liveness_row_exists_while_running_and_is_stopped_after_shutdown(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    query = "SELECT role, queues, kinds, stopped_at FROM awa.runtimes WHERE instance_id = $1"
    async with client:
        runtime = awa.Runtime(client, make_config(queues={"default": 2, "mail": 1}))
        assert await raw.fetchrow(query, runtime.instance_id) is None
        await runtime.start()
        row = await raw.fetchrow(query, runtime.instance_id)
        assert row is not None
        assert row["role"] == "worker"
        assert row["stopped_at"] is None
        assert list(row["kinds"]) == ["noop"]
        await runtime.shutdown()
    row = await raw.fetchrow(query, runtime.instance_id)
    assert row is not None
    assert row["stopped_at"] is not None


async def test_start_is_idempotent_and_shutdown_is_safe_twice(database_url: str) -> None:
    client = awa.Client(database_url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    async with client:
        never_started = awa.Runtime(client, make_config())
        await never_started.shutdown()
        assert never_started.state == "stopped"

        runtime = awa.Runtime(client, make_config())
        first = await runtime.start()
        second = await runtime.start()
        assert first is second is runtime
        assert runtime.state == "running"
        await runtime.shutdown()
        await runtime.shutdown()
        assert runtime.state == "stopped"
        with pytest.raises(awa.RuntimeStateError):
            await runtime.start()


async def test_abort_leaves_running_job_for_rescue(database_url: str) -> None:
    client = awa.Client(database_url)
    started = anyio.Event()

    @client.handler("forever")
    async def forever(ctx: awa.JobContext) -> None:
        started.set()
        await anyio.sleep_forever()

    async with client:
        job = await client.insert("forever")
        runtime = await awa.Runtime(client, make_config()).start()
        with anyio.fail_after(10):
            await started.wait()
        await runtime.abort()
        assert runtime.state == "stopped"
        stored = await client.get_job(job.id)
    # nothing recorded: the job still shows running, held by the aborted runtime
    assert stored.state is awa.JobState.RUNNING
    assert stored.claimed_by == runtime.instance_id
    assert stored.attempt == 1


async def test_retry_job_brings_cancelled_job_back(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        job = await client.insert("idle", max_attempts=2)
        await client.cancel_job(job.id, reason="paused by operator")
        again = await client.retry_job(job.id)
        assert again.state is awa.JobState.AVAILABLE
        assert again.attempt == 0
        assert again.finalized_at is None
        assert [e["message"] for e in again.errors] == ["paused by operator"]
