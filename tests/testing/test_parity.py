"""``perform`` says what the worker records: the same handler, on the same client, run once
by a real runtime against PostgreSQL and once by ``awa.testing.perform``, ends in the same
state, at the same time, with the same error record and result.

Both paths share ``awa.worker.attempt.invoke`` and ``awa.worker.outcomes.decide``; this test
is what would catch a third path (a rule applied in the dispatcher, the completion buffer
or the SQL that ``perform`` cannot see).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

import awa
from awa.testing import perform

Handler = Callable[[awa.JobContext], Awaitable[Any]]
EXACT = awa.Backoff(base=10.0, jitter=0.0)
WAITING = {
    awa.JobState.COMPLETED,
    awa.JobState.FAILED,
    awa.JobState.CANCELLED,
    awa.JobState.RETRYABLE,
    awa.JobState.SCHEDULED,
    awa.JobState.WAITING_EXTERNAL,
}


async def returns(ctx: awa.JobContext) -> object:
    return {"n": ctx.args["n"] + 1}


async def returns_a_set(ctx: awa.JobContext) -> object:
    return {1, 2}


async def raises(ctx: awa.JobContext) -> None:
    raise ValueError(f"boom {ctx.args['n']}")


async def snoozes(ctx: awa.JobContext) -> awa.Snooze:
    return awa.Snooze(timedelta(minutes=2))


async def retries_after(ctx: awa.JobContext) -> None:
    raise awa.RetryAfter(90, reason="rate limited")


async def cancels(ctx: awa.JobContext) -> awa.Cancel:
    return awa.Cancel("unsubscribed")


async def times_out(ctx: awa.JobContext) -> None:
    await anyio.sleep_forever()


async def escapes(ctx: awa.JobContext) -> None:
    raise SystemExit(2)


async def parks(ctx: awa.JobContext) -> awa.WaitForCallback:
    return awa.WaitForCallback(await ctx.register_callback(timeout=600))


CASES: dict[str, tuple[Handler, dict[str, Any]]] = {
    "return": (returns, {}),
    "unserialisable return": (returns_a_set, {}),
    "raise with attempts left": (raises, {"max_attempts": 3}),
    "raise on the last attempt": (raises, {"max_attempts": 1}),
    "snooze": (snoozes, {"max_attempts": 1}),
    "retry after": (retries_after, {"max_attempts": 3}),
    "retry after on the last attempt": (retries_after, {"max_attempts": 1}),
    "cancel": (cancels, {}),
    "timeout": (times_out, {"max_attempts": 1, "timeout": 0.05}),
    "escaped BaseException": (escapes, {"max_attempts": 3}),
    "wait for callback": (parks, {}),
}


async def settled(client: awa.Client, job_id: int) -> awa.Job:
    """The job once the runtime has recorded its attempt (results are written in batches)."""
    with anyio.fail_after(10):
        while True:
            job = await client.get_job(job_id)
            if job.state in WAITING:
                return job
            await anyio.sleep(0.02)


def comparable(error: dict[str, Any]) -> dict[str, Any]:
    """An error record without what differs between two runs (line numbers, paths)."""
    return {k: v for k, v in error.items() if k != "traceback"}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_perform_predicts_what_the_runtime_records(database_url: str, case: str) -> None:
    handler, options = CASES[case]
    clock = awa.FakeClock()
    client = awa.Client(database_url, clock=clock)
    client.registry.register("work", handler)
    config = awa.RuntimeConfig(
        queues={"default": 2}, heartbeat_interval=0.1, poll_interval=0.2, backoff=EXACT
    )
    async with client:
        inserted = await client.insert("work", {"n": 1}, **options)
        async with awa.Runtime(client, config):
            job = await settled(client, inserted.id)

    predicted = await perform(client, "work", {"n": 1}, backoff=EXACT, **options)

    decision = predicted.decision
    assert job.state is decision.state, (case, job.errors)
    assert job.attempt == (0 if decision.give_back_attempt else 1)
    assert job.result == decision.result
    if decision.run_at is not None:
        assert job.run_at == decision.run_at
    if decision.error is None:
        assert job.errors == []
    else:
        assert [comparable(e) for e in job.errors] == [comparable(decision.error)]
        assert ("traceback" in job.errors[0]) == ("traceback" in decision.error)
