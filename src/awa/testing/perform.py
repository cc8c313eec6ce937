"""``perform``: run one job through its registered handler, without a runtime or a database.

Why no database: a handler's logic (what it returns, raises, snoozes or cancels on) should
be testable in microseconds, with nothing to start. The job is built in memory from the same
validated insert parameters ``client.insert`` would store, its args come back through a JSON
round trip (a handler sees lists where the producer passed tuples, as from the database),
and the handler is called and judged by the worker's own code: ``awa.worker.attempt.invoke``
(deadline, awa's cancellation, escaped ``BaseException``) and ``awa.worker.outcomes.decide``
(retry or fail, backoff, snooze, cancel, park). Nothing is written anywhere.

The handler gets a real ``JobContext``. Progress is kept in memory (returned as
``result.progress``). Callbacks are registered in memory: ``ctx.register_callback`` returns
a ``Callback`` with an id, a token and a timeout from the client's clock, and returning
``WaitForCallback`` with it gives ``Parked``; the resumed attempt is tested by performing
again with ``callback=CallbackResult(id, payload)``. What the handler itself does with the
database (inserting follow-up jobs through a connected client, say) happens for real, and
``enqueued_jobs`` / ``assert_enqueued`` read it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import anyio

from awa.backoff import DEFAULT_BACKOFF, Backoff
from awa.client import Client
from awa.clock import Clock
from awa.db.connect import decode_json
from awa.errors import ConfigError, ValidationError
from awa.handlers import JobContext
from awa.model import CALLBACK_METADATA_KEY, CallbackResult, Job, JobState
from awa.store.attempts import LEASE_GENERATION_SHIFT
from awa.testing.results import PerformResult, from_decision
from awa.validation import check_int
from awa.worker.attempt import attempt_timeout, invoke
from awa.worker.outcomes import decide, refuse

__all__ = ["perform"]

#: ``claimed_by`` of a performed job: no runtime holds it.
PERFORMER = "awa.testing"


class _MemoryCallbacks:
    """The ``CallbackRegistrar`` of a performed job: remembers the registration and answers
    with its timeout, as the database would for an attempt that still holds its job."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def register_callback(
        self,
        job_id: int,
        run_lease: int,
        callback_id: uuid.UUID,
        token_hash: bytes,
        timeout: float,
        resume: bool,
        now: datetime | None = None,
    ) -> datetime | None:
        return (now or self._clock.now()) + timedelta(seconds=timeout)


async def perform(
    client: Client,
    kind: str,
    args: Any = None,
    *,
    attempt: int = 1,
    max_attempts: int = 25,
    queue: str | None = None,
    priority: int = 2,
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    timeout: float | timedelta | None = None,
    progress: Any = None,
    callback: CallbackResult | None = None,
    backoff: Backoff | None = None,
    job_id: int = 1,
) -> PerformResult:
    """Run ``kind``'s handler registered on ``client`` once, as attempt ``attempt`` of
    ``max_attempts``, and return what the worker would record.

    Insert options (``queue``, ``priority``, ``tags``, ``metadata``, ``timeout``) are
    validated as ``client.insert`` validates them, with the handler's queue and timeout as
    defaults. ``progress`` is what an earlier attempt left (``ctx.progress`` starts with
    it); ``callback`` makes this the resumed attempt of a parked job (``ctx.callback``).
    ``backoff`` is the runtime's (``RuntimeConfig.backoff``, default ``awa.Backoff()``):
    pass ``Backoff(jitter=0)`` to assert an exact retry time. Times come from
    ``client.clock`` (use ``awa.FakeClock`` for exact ``run_at`` values); the deadline is
    real time, as in the worker. ``client`` need not be connected.
    """
    spec = client.registry.get(kind) if isinstance(kind, str) else None
    if spec is None:
        known = ", ".join(repr(k) for k in client.registry.kinds()) or "none"
        raise ConfigError(f"no handler for kind {kind!r} on this client (registered: {known})")
    params = client.params(
        kind,
        args,
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        tags=tags,
        metadata=metadata,
        timeout=timeout,
    )
    check_int("attempt", attempt, 1, max_attempts)  # max_attempts: checked by params
    check_int("job_id", job_id, 1, 2**63 - 1)
    if callback is not None and not isinstance(callback, CallbackResult):
        raise ValidationError("callback", callback, "expected awa.CallbackResult(id, payload)")
    clock = client.clock
    now = clock.now()
    stored_metadata = decode_json(params.metadata_json)
    if callback is not None:
        stored_metadata[CALLBACK_METADATA_KEY] = {
            "id": callback.id,
            "attempt": attempt,
            "payload": callback.payload,
        }
    limit = params.timeout_seconds
    job = Job(
        id=job_id,
        kind=kind,
        queue=params.queue,
        args=decode_json(params.args_json),
        state=JobState.RUNNING,
        priority=params.priority,
        attempt=attempt,
        max_attempts=max_attempts,
        run_at=now,
        created_at=now,
        attempted_at=now,
        heartbeat_at=now,
        deadline_at=now + timedelta(seconds=limit) if limit is not None else None,
        timeout=limit,
        tags=list(params.tags),
        metadata=stored_metadata,
        progress=progress,
        # a claim's lease has this shape (ADR 040): the generation above 32 bits whose
        # draw, random in the store, is 0 here so a performed job's lease is repeatable
        run_lease=attempt << LEASE_GENERATION_SHIFT,
        claimed_by=PERFORMER,
    )
    backoff = backoff or DEFAULT_BACKOFF
    context = JobContext(job, callbacks=_MemoryCallbacks(clock), clock=clock, codec=spec.codec)
    refused = refuse(job, now, context)
    if refused is not None:
        return from_decision(
            refused, job=job, now=now, progress=progress, exception=None, callback=None
        )
    ran = await invoke(
        spec.fn, context, timeout=attempt_timeout(job, spec), scope=anyio.CancelScope()
    )
    now = clock.now()
    decision = decide(
        job,
        now,
        backoff,
        returned=ran.returned,
        raised=ran.raised,
        timed_out=ran.timed_out,
        timeout=attempt_timeout(job, spec),
    )
    return from_decision(
        decision,
        job=job,
        now=now,
        progress=context.progress,
        exception=ran.raised,
        callback=context.registered_callback,
    )
