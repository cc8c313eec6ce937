"""The outcome mapping, through ``awa.testing.perform``: what a handler returns or raises and
what the worker records for it (return, raise, Snooze, RetryAfter, Cancel, WaitForCallback,
timeouts, escaped BaseExceptions, the last attempt).

No database: ``perform`` runs the handler in memory, on a client that never connects. That
the worker records the same thing is ``test_parity.py``'s job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

import awa
from awa.testing import Cancelled, Completed, Failed, Parked, Retried, Snoozed, perform

EXACT = awa.Backoff(base=10.0, jitter=0.0)


def make_client() -> tuple[awa.Client, awa.FakeClock]:
    clock = awa.FakeClock()
    return awa.Client("postgresql://nobody@127.0.0.1:1/never", clock=clock), clock


async def test_a_returned_value_completes_the_job_with_it() -> None:
    client, _ = make_client()

    @client.handler("double")
    async def double(ctx: awa.JobContext) -> dict[str, int]:
        return {"doubled": ctx.args["n"] * 2}

    result = await perform(client, "double", {"n": 21})
    assert isinstance(result, Completed)
    assert result.result == {"doubled": 42}
    assert result.outcome == "completed"
    assert result.exception is None
    assert result.decision.state is awa.JobState.COMPLETED


async def test_an_unserialisable_return_value_completes_with_its_repr() -> None:
    client, _ = make_client()

    @client.handler("weird")
    async def weird(ctx: awa.JobContext) -> object:
        return {1, 2}

    result = await perform(client, "weird")
    assert isinstance(result, Completed)
    assert result.result == {"unserialisable_result": repr({1, 2})}


async def test_an_exception_retries_after_the_backoff_with_its_error_record() -> None:
    client, clock = make_client()

    @client.handler("explode")
    async def explode(ctx: awa.JobContext) -> None:
        raise ValueError("boom at step 3")

    result = await perform(client, "explode", max_attempts=5, backoff=EXACT)
    assert isinstance(result, Retried)
    assert result.run_at == clock.now() + timedelta(seconds=10)
    assert result.delay == timedelta(seconds=10)
    assert isinstance(result.exception, ValueError)
    assert result.message == "boom at step 3"
    assert result.error["kind"] == "exception"
    assert result.error["type"] == "ValueError"
    assert result.error["attempt"] == 1
    assert "ValueError: boom at step 3" in result.error["traceback"]


async def test_the_backoff_grows_with_the_attempt_number() -> None:
    client, _ = make_client()

    @client.handler("explode")
    async def explode(ctx: awa.JobContext) -> None:
        raise ValueError("boom")

    third = await perform(client, "explode", attempt=3, max_attempts=5, backoff=EXACT)
    assert isinstance(third, Retried)
    assert third.delay == timedelta(seconds=40)
    assert third.job.attempt == third.error["attempt"] == 3


async def test_an_exception_on_the_last_attempt_fails_the_job() -> None:
    client, _ = make_client()

    @client.handler("explode")
    async def explode(ctx: awa.JobContext) -> None:
        raise RuntimeError("no more tries")

    result = await perform(client, "explode", attempt=3, max_attempts=3)
    assert isinstance(result, Failed)
    assert result.message == "no more tries"
    assert result.error["type"] == "RuntimeError"
    assert result.outcome == "failed"


@pytest.mark.parametrize("mode", ["raise", "return"])
async def test_snooze_reschedules_and_gives_the_attempt_back(mode: str) -> None:
    client, clock = make_client()

    @client.handler("sleepy")
    async def sleepy(ctx: awa.JobContext) -> awa.Snooze:
        if mode == "raise":
            raise awa.Snooze(timedelta(minutes=2))
        return awa.Snooze(timedelta(minutes=2))

    result = await perform(client, "sleepy", max_attempts=1)
    assert isinstance(result, Snoozed)
    assert result.delay == timedelta(minutes=2)
    assert result.run_at == clock.now() + timedelta(minutes=2)
    assert result.decision.give_back_attempt
    assert result.decision.error is None


@pytest.mark.parametrize("mode", ["raise", "return"])
async def test_cancel_stops_the_job_with_its_reason(mode: str) -> None:
    client, _ = make_client()

    @client.handler("abandon")
    async def abandon(ctx: awa.JobContext) -> awa.Cancel:
        if mode == "raise":
            raise awa.Cancel("customer deleted their account")
        return awa.Cancel("customer deleted their account")

    result = await perform(client, "abandon", max_attempts=5)
    assert isinstance(result, Cancelled)
    assert result.reason == "customer deleted their account"
    assert result.decision.error is not None
    assert result.decision.error["kind"] == "cancelled"


@pytest.mark.parametrize("mode", ["raise", "return"])
async def test_retry_after_uses_its_own_delay_not_the_backoff(mode: str) -> None:
    client, clock = make_client()

    @client.handler("later")
    async def later(ctx: awa.JobContext) -> awa.RetryAfter:
        outcome = awa.RetryAfter(timedelta(seconds=90), reason="rate limited")
        if mode == "raise":
            raise outcome
        return outcome

    huge = awa.Backoff(base=3000.0, cap=3600.0, jitter=0.0)
    result = await perform(client, "later", max_attempts=5, backoff=huge)
    assert isinstance(result, Retried)
    assert result.run_at == clock.now() + timedelta(seconds=90)
    assert result.error["kind"] == "retry_after"
    assert result.message == "rate limited"


async def test_retry_after_on_the_last_attempt_fails_the_job() -> None:
    client, _ = make_client()

    @client.handler("later")
    async def later(ctx: awa.JobContext) -> None:
        raise awa.RetryAfter(60)

    result = await perform(client, "later", max_attempts=1)
    assert isinstance(result, Failed)
    assert result.error["kind"] == "retry_after"


@pytest.mark.parametrize(("attempt", "expected"), [(1, Retried), (2, Failed)])
async def test_a_handler_over_its_timeout_is_cancelled_and_the_attempt_fails(
    attempt: int, expected: type[Retried | Failed]
) -> None:
    client, _ = make_client()
    cancelled = anyio.Event()

    @client.handler("stuck", timeout=0.05)
    async def stuck(ctx: awa.JobContext) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    result = await perform(client, "stuck", attempt=attempt, max_attempts=2)
    assert cancelled.is_set()
    assert isinstance(result, expected)
    assert result.error["kind"] == "timeout"
    assert "0.05" in result.error["message"]
    assert result.job.timeout == pytest.approx(0.05)


async def test_a_timeout_given_for_the_job_beats_the_handlers() -> None:
    client, _ = make_client()

    @client.handler("stuck", timeout=3600)
    async def stuck(ctx: awa.JobContext) -> None:
        await anyio.sleep_forever()

    result = await perform(client, "stuck", timeout=0.05, max_attempts=1)
    assert isinstance(result, Failed)
    assert result.error["kind"] == "timeout"


@pytest.mark.parametrize("escape", [SystemExit(3), KeyboardInterrupt()])
async def test_an_escaped_base_exception_fails_the_attempt_and_goes_no_further(
    escape: BaseException,
) -> None:
    client, _ = make_client()

    @client.handler("escape")
    async def run(ctx: awa.JobContext) -> None:
        raise escape

    result = await perform(client, "escape")
    assert isinstance(result, Retried)
    assert result.error["type"] == "HandlerEscaped"
    assert type(escape).__name__ in result.message


async def test_wait_for_callback_parks_the_job_on_the_registered_callback() -> None:
    client, clock = make_client()

    @client.handler("charge")
    async def charge(ctx: awa.JobContext) -> object:
        if ctx.callback is not None:
            return {"paid": ctx.callback.payload}
        callback = await ctx.register_callback(timeout=3600, resume=True)
        return awa.WaitForCallback(callback)

    parked = await perform(client, "charge", {"amount": 5})
    assert isinstance(parked, Parked)
    assert parked.callback.resume is True
    assert parked.callback.token
    assert parked.callback.timeout_at == clock.now() + timedelta(hours=1)
    assert parked.decision.callback_id == parked.callback.id
    assert parked.outcome == "parked"

    resumed = await perform(
        client, "charge", {"amount": 5}, callback=awa.CallbackResult(parked.callback.id, "ok")
    )
    assert isinstance(resumed, Completed)
    assert resumed.result == {"paid": "ok"}


async def test_waiting_on_a_callback_this_attempt_did_not_register_fails_the_attempt() -> None:
    client, clock = make_client()
    foreign = awa.Callback("cb", "t", job_id=999, run_lease=1, timeout_at=clock.now(), resume=False)

    @client.handler("confused")
    async def confused(ctx: awa.JobContext) -> awa.WaitForCallback:
        return awa.WaitForCallback(foreign)

    result = await perform(client, "confused")
    assert isinstance(result, Retried)
    assert "did not register" in result.message


async def test_a_second_callback_in_one_attempt_is_refused() -> None:
    client, _ = make_client()

    @client.handler("greedy")
    async def greedy(ctx: awa.JobContext) -> None:
        await ctx.register_callback(timeout=60)
        await ctx.register_callback(timeout=60)

    result = await perform(client, "greedy", max_attempts=1)
    assert isinstance(result, Failed)
    assert isinstance(result.exception, awa.InvalidTransition)


async def test_the_handler_gets_a_real_context_with_args_progress_and_the_job() -> None:
    client, _ = make_client()
    seen: dict[str, Any] = {}

    @client.handler("report", queue="reports", timeout=30)
    async def report(ctx: awa.JobContext) -> None:
        seen.update(
            args=ctx.args,
            before=ctx.progress,
            attempt=ctx.job.attempt,
            queue=ctx.job.queue,
            tags=ctx.job.tags,
            state=ctx.job.state,
            callback=ctx.callback,
        )
        ctx.set_progress({"step": 2, "of": 3})

    result = await perform(
        client, "report", {"pair": (1, 2)}, attempt=2, tags=["x"], progress={"step": 1}
    )
    assert isinstance(result, Completed)
    assert seen == {
        "args": {"pair": [1, 2]},  # a JSON round trip, as from the database
        "before": {"step": 1},
        "attempt": 2,
        "queue": "reports",  # the handler's queue, as an insert would choose
        "tags": ["x"],
        "state": awa.JobState.RUNNING,
        "callback": None,
    }
    assert result.progress == {"step": 2, "of": 3}
    assert result.job.timeout == 30.0


async def test_what_an_insert_would_refuse_is_refused_before_the_handler_runs() -> None:
    client, _ = make_client()
    calls: list[int] = []

    @client.handler("work")
    async def work(ctx: awa.JobContext) -> None:
        calls.append(1)

    with pytest.raises(awa.ValidationError) as bad_args:
        await perform(client, "work", {"when": object()})
    assert bad_args.value.field == "args"
    with pytest.raises(awa.ValidationError) as bad_attempt:
        await perform(client, "work", attempt=4, max_attempts=3)
    assert bad_attempt.value.field == "attempt"
    with pytest.raises(awa.ValidationError) as bad_priority:
        await perform(client, "work", priority=9)
    assert bad_priority.value.field == "priority"
    with pytest.raises(awa.ValidationError) as bad_callback:
        await perform(client, "work", callback="cb-1")  # type: ignore[arg-type]
    assert bad_callback.value.field == "callback"
    assert calls == []


async def test_an_unknown_kind_names_the_registered_ones() -> None:
    client, _ = make_client()

    @client.handler("send_email")
    async def send_email(ctx: awa.JobContext) -> None:
        return None

    with pytest.raises(awa.ConfigError, match=r"'send_emial'.*registered: 'send_email'"):
        await perform(client, "send_emial")
