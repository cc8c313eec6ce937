"""Shared pieces of the dead-letter tests (``tests/dlq/`` and the ``dead_letter`` branch
test): a client, the hold under test, a job failed through the worker's own store calls,
and where a job is now."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

import awa
from awa.clock import utcnow
from awa.dlq import DeadLetterPolicy
from awa.maintenance.branches.dead_letter import DeadLetterHold
from awa.store import FinishedAttempt, Rescheduled, Store


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[awa.Client]:
    async with awa.Client(database_url) as c:
        yield c


def hold(*policies: DeadLetterPolicy, **options: Any) -> DeadLetterHold:
    return DeadLetterHold(list(policies), "test", **options)


async def fail_job(
    store: Store,
    queue: str,
    *,
    attempts: int = 2,
    kind: str = "send_email",
    args: Any = None,
    **options: Any,
) -> int:
    """Insert a job and fail every attempt through the worker's store calls (claim, then
    reschedule as retryable, then finalize as failed): a real error history."""
    params = awa.InsertParams(
        kind,
        {"to": "a@example.com"} if args is None else args,
        queue=queue,
        max_attempts=attempts,
        **options,
    )
    job = await store.jobs.insert_job(params)
    for attempt in range(1, attempts + 1):
        (claimed,) = await store.jobs.claim_batch(queue, [kind], 1, "test-runtime")
        assert claimed.id == job.id and claimed.attempt == attempt
        error = {
            "at": utcnow().isoformat(),
            "attempt": attempt,
            "kind": "exception",
            "type": "RuntimeError",
            "message": f"smtp refused, attempt {attempt}",
            "traceback": f"Traceback (most recent call last):\n  line {attempt}\nRuntimeError",
        }
        if attempt < attempts:
            applied = await store.jobs.reschedule_batch(
                [
                    Rescheduled(
                        job.id,
                        claimed.run_lease,
                        awa.JobState.RETRYABLE,
                        utcnow() - timedelta(seconds=1),
                        error,
                        False,
                    )
                ]
            )
        else:
            applied = await store.jobs.finalize_batch(
                [FinishedAttempt(job.id, claimed.run_lease, awa.JobState.FAILED, error)]
            )
        assert applied == {job.id}
    return job.id


async def where(raw: asyncpg.Connection, job_id: int) -> list[str]:
    """Every table that holds ``job_id`` (a job must be in exactly one, or pruned)."""
    found = []
    for table in ("jobs", "jobs_done", "dead_letters"):
        if await raw.fetchval(f"SELECT count(*) FROM awa.{table} WHERE id = $1", job_id):
            found.append(table)
    return found
