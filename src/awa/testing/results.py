"""What ``awa.testing.perform`` returns: one class per thing the worker would record.

Why typed classes rather than the worker's ``Decision``: a test asks "did it retry, and
when?", and ``isinstance(result, Retried)`` narrows the type so ``result.run_at`` is known
to exist; a ``Decision`` keeps every field optional. Each result still carries the
``decision`` it was built from, which is exactly what the worker would have written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from awa.model import Callback, Job, JobState
from awa.worker.outcomes import Decision

__all__ = [
    "Cancelled",
    "Completed",
    "Failed",
    "Parked",
    "PerformResult",
    "Performed",
    "Retried",
    "Snoozed",
    "from_decision",
]


@dataclass(frozen=True, kw_only=True)
class Performed:
    """Common to every result: the job as the handler saw it, the worker's ``decision``,
    the progress the handler left (``ctx.progress`` at the end) and the exception it raised
    (awa's outcomes included; None when it returned)."""

    job: Job
    decision: Decision
    progress: Any
    exception: BaseException | None

    @property
    def outcome(self) -> str:
        """The worker's name for it: completed, retried, failed, cancelled, snoozed, parked."""
        return self.decision.outcome


@dataclass(frozen=True, kw_only=True)
class Completed(Performed):
    """The job completes; ``result`` is what would be stored (a value JSON cannot hold is
    stored as ``{"unserialisable_result": repr}``, as the worker does)."""

    result: Any


@dataclass(frozen=True, kw_only=True)
class Retried(Performed):
    """The attempt failed and the job runs again at ``run_at`` (``delay`` from now): an
    exception (backoff), ``RetryAfter`` (its delay) or a timeout, with attempts left."""

    error: dict[str, Any]
    run_at: datetime
    delay: timedelta

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))


@dataclass(frozen=True, kw_only=True)
class Failed(Performed):
    """The job fails for good: the attempt failed and it was the last one (or the job could
    not be run at all). ``error`` is the record the worker would append."""

    error: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))


@dataclass(frozen=True, kw_only=True)
class Snoozed(Performed):
    """``Snooze``: the job runs again at ``run_at`` and this attempt is given back."""

    run_at: datetime
    delay: timedelta


@dataclass(frozen=True, kw_only=True)
class Cancelled(Performed):
    """``Cancel``: the job stops for good with ``reason``."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class Parked(Performed):
    """``WaitForCallback``: the job waits (``waiting_external``) for ``callback``. Perform
    again with ``callback=awa.CallbackResult(callback.id, payload)`` to test the resumed
    attempt of a callback registered with ``resume=True``."""

    callback: Callback


PerformResult = Completed | Retried | Failed | Snoozed | Cancelled | Parked


def from_decision(
    decision: Decision,
    *,
    job: Job,
    now: datetime,
    progress: Any,
    exception: BaseException | None,
    callback: Callback | None,
) -> PerformResult:
    """The typed result for the worker's ``decision`` (``callback``: the one the handler
    registered during the attempt, if any)."""
    common: dict[str, Any] = {
        "job": job,
        "decision": decision,
        "progress": progress,
        "exception": exception,
    }
    state = decision.state
    if state is JobState.COMPLETED:
        return Completed(result=decision.result, **common)
    if state is JobState.FAILED:
        return Failed(error=decision.error or {}, **common)
    if state is JobState.CANCELLED:
        reason = str((decision.error or {}).get("message", ""))
        return Cancelled(reason=reason, **common)
    if state in (JobState.RETRYABLE, JobState.SCHEDULED) and decision.run_at is not None:
        delay = decision.run_at - now
        if state is JobState.SCHEDULED:
            return Snoozed(run_at=decision.run_at, delay=delay, **common)
        return Retried(error=decision.error or {}, run_at=decision.run_at, delay=delay, **common)
    if state is JobState.WAITING_EXTERNAL and callback is not None:
        return Parked(callback=callback, **common)
    raise AssertionError(f"awa.testing cannot describe the worker's decision {decision!r}")
