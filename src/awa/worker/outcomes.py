"""Turning what a handler did into what the database should record.

Kept free of I/O so every rule (retry vs fail, snooze gives the attempt back, a timeout is a
failed attempt) is visible in one place and testable without a database.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from awa.backoff import Backoff
from awa.errors import ValidationError, safe_repr
from awa.handlers import HandlerSpec, JobContext
from awa.model import Job, JobState, UndecodableJson, UnreadableMetadata
from awa.outcomes import Cancel, RetryAfter, Snooze, WaitForCallback
from awa.validation import encode_json
from awa.worker.attempt import Invocation, attempt_timeout
from awa.worker.inflight import InFlightJob, StopReason

__all__ = [
    "COMPLETED",
    "Decision",
    "decide",
    "decide_attempt",
    "error_record",
    "refuse",
    "requeue",
]

_TRACEBACK_LINES = 12
_MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Decision:
    """One of: complete (``state`` COMPLETED), finalize (FAILED/CANCELLED), reschedule
    (RETRYABLE/SCHEDULED at ``run_at``) or park (WAITING_EXTERNAL on ``callback_id``)."""

    state: JobState
    outcome: str  # completed, retried, failed, cancelled, snoozed, parked
    result: Any = None
    run_at: datetime | None = None
    error: dict[str, Any] | None = None
    give_back_attempt: bool = False
    callback_id: str | None = None


#: What a handler that returned None (and raised nothing, in time) records: the drain's
#: common case, shared instead of built (and its None result JSON-checked) per job.
COMPLETED = Decision(JobState.COMPLETED, "completed")


def error_record(
    job: Job, now: datetime, kind: str, exc: BaseException | None, message: str
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "at": now.isoformat(),
        "attempt": job.attempt,
        "kind": kind,
        "message": storable_text(message[:_MESSAGE_LIMIT]),
    }
    if exc is not None:
        record["type"] = type(exc).__qualname__
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        record["traceback"] = storable_text("".join(lines[-_TRACEBACK_LINES:])[-4000:])
    return record


def storable_text(text: str) -> str:
    """Text PostgreSQL can store in jsonb: lone surrogates and NUL escaped. A handler's
    error message is arbitrary, and one unstorable character would make PostgreSQL refuse
    the whole batched completion flush."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def requeue(now: datetime) -> Decision:
    """Give the attempt back, runnable at ``now``: shutdown or a lost presence fence stopped
    it, or shutdown's grace ran out before it started."""
    return Decision(JobState.SCHEDULED, "requeued", run_at=now, give_back_attempt=True)


def decide_attempt(
    entry: InFlightJob,
    ran: Invocation,
    now: Callable[[], datetime],
    backoff: Backoff,
    spec: HandlerSpec | None,
) -> Decision | None:
    """What to record for one handler call (``ran``) of ``entry``, or None when the attempt
    was lost meanwhile (nothing to write): a stop reason (cancel request, shutdown, fence)
    overrides what the handler did; otherwise ``decide``."""
    returned_none = ran.returned is None and ran.raised is None and not ran.timed_out
    if returned_none and entry.stop_reason is None:
        return COMPLETED  # what ``decide`` says, without reading the clock
    at = now()
    job = entry.job
    if entry.stop_reason is StopReason.LOST:
        return None
    if entry.stop_reason is StopReason.CANCEL_REQUESTED:
        error = {
            "at": at.isoformat(),
            "attempt": job.attempt,
            "kind": "cancelled",
            "message": entry.stop_detail or "cancelled by operator while running",
        }
        return Decision(JobState.CANCELLED, "cancelled", error=error)
    if entry.stop_reason in (StopReason.SHUTDOWN, StopReason.FENCED):
        return requeue(at)
    return decide(
        job,
        at,
        backoff,
        returned=ran.returned,
        raised=ran.raised,
        timed_out=ran.timed_out,
        timeout=attempt_timeout(job, spec),
    )


def refuse(job: Job, now: datetime, context: JobContext[Any] | None = None) -> Decision | None:
    """A terminal failure for a job that cannot be run as stored (args Python cannot decode,
    metadata that is not a JSON object, args that do not fit the handler's ``args=`` type,
    rebuilt here into ``context``), or None. Another attempt would read the same row, so it
    fails at once; the handler never sees a marker or a half-typed value."""
    kind = "undecodable"
    if isinstance(job.args, UndecodableJson):
        problem = f"its args cannot be decoded: {job.args.reason} ({job.args.size} characters)"
    elif isinstance(job.metadata, UnreadableMetadata):
        problem = f"its metadata cannot be decoded: {job.metadata.reason}"
    elif context is not None and (mismatch := context.load_args()) is not None:
        kind, problem = "invalid_args", f"its args {mismatch}"
    else:
        return None
    message = f"job {job.id} (kind {job.kind!r}) was not run: {problem}"
    return Decision(JobState.FAILED, "failed", error=error_record(job, now, kind, None, message))


def _fail_or_retry(job: Job, now: datetime, error: dict[str, Any], delay: float) -> Decision:
    if job.attempt >= job.max_attempts:
        return Decision(JobState.FAILED, "failed", error=error)
    return Decision(
        JobState.RETRYABLE, "retried", run_at=now + timedelta(seconds=delay), error=error
    )


def decide(
    job: Job,
    now: datetime,
    backoff: Backoff,
    *,
    returned: Any = None,
    raised: BaseException | None = None,
    timed_out: bool = False,
    timeout: float | None = None,
) -> Decision:
    """The record for one finished attempt (``timeout``: the limit that applied)."""
    if returned is None and raised is None and not timed_out:
        return COMPLETED
    signal = (
        raised if isinstance(raised, Snooze | RetryAfter | Cancel | WaitForCallback) else returned
    )
    if timed_out:
        limit = timeout if timeout is not None else job.timeout
        message = f"attempt exceeded its timeout of {limit:g}s" if limit else "attempt timed out"
        error = error_record(job, now, "timeout", None, message)
        return _fail_or_retry(job, now, error, backoff.delay(job.attempt))
    if isinstance(signal, Snooze):
        return Decision(
            JobState.SCHEDULED,
            "snoozed",
            run_at=now + timedelta(seconds=signal.delay),
            give_back_attempt=True,
        )
    if isinstance(signal, RetryAfter):
        error = error_record(job, now, "retry_after", None, signal.reason)
        return _fail_or_retry(job, now, error, signal.delay)
    if isinstance(signal, Cancel):
        error = error_record(job, now, "cancelled", None, signal.reason)
        return Decision(JobState.CANCELLED, "cancelled", error=error)
    if isinstance(signal, WaitForCallback):
        callback = signal.callback
        if callback.job_id != job.id or callback.run_lease != job.run_lease:
            message = "WaitForCallback with a callback that this attempt did not register"
            error = error_record(job, now, "exception", None, message)
            return _fail_or_retry(job, now, error, backoff.delay(job.attempt))
        return Decision(JobState.WAITING_EXTERNAL, "parked", callback_id=callback.id)
    if raised is not None:
        error = error_record(job, now, "exception", raised, str(raised) or type(raised).__name__)
        return _fail_or_retry(job, now, error, backoff.delay(job.attempt))
    try:
        encode_json("result", returned)
        result = returned
    except (ValidationError, RecursionError, ValueError):
        shown = storable_text(safe_repr(returned, _MESSAGE_LIMIT))
        result = {"unserialisable_result": shown}
    return Decision(JobState.COMPLETED, "completed", result=result)
