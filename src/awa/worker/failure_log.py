"""One log record per failed attempt, with the handler's traceback.

Why: the job row keeps the last lines of a traceback (``awa.worker.outcomes.error_record``),
but an operator watching logs saw nothing at all when a handler raised. Exactly one record
per attempt that the handler failed (an exception or its deadline) is written here, after
the decision, so the record can say whether the job will be retried or has failed for good.

Not logged: the handler's own outcome signals (``RetryAfter``, ``Snooze``, ``Cancel``,
``WaitForCallback``: the handler chose them and the job row records them), an operator's
cancel, shutdown requeues and lost leases (logged where they happen, or not failures).

The records go to their own logger, ``awa.worker.failures``, so an application can route or
quieten them apart from the rest of the worker's logs (a demo with a deliberately flaky
handler sets it to ERROR: only final failures).

Fields (``extra=``, rendered by ``awa.telemetry.logs.JsonFormatter``): ``event``
(``job_retry`` or ``job_failed``), ``job_id``, ``kind``, ``queue``, ``attempt``,
``max_attempts``, ``outcome``, ``error_type``; the traceback rides on ``exc_info``.
"""

from __future__ import annotations

import logging

from awa.model import Job
from awa.outcomes import Cancel, RetryAfter, Snooze, WaitForCallback
from awa.worker.attempt import Invocation
from awa.worker.outcomes import Decision

__all__ = ["log", "log_failed_attempt"]

log = logging.getLogger("awa.worker.failures")

_FAILURES = frozenset({"retried", "failed"})
_SIGNALS = (RetryAfter, Snooze, Cancel, WaitForCallback)


def log_failed_attempt(
    job: Job, ran: Invocation, decision: Decision, timeout: float | None
) -> bool:
    """Log ``job``'s attempt if the handler failed it; returns whether a record was
    written (call inside the attempt's span, so the record carries its trace id)."""
    if decision.outcome not in _FAILURES:
        return False
    if ran.timed_out:
        cause = f"exceeded its timeout of {timeout:g}s" if timeout else "timed out"
        error_type = "timeout"
        exc: BaseException | None = None
    elif ran.raised is not None and not isinstance(ran.raised, _SIGNALS):
        exc = ran.raised
        error_type = type(exc).__qualname__
        cause = f"raised {error_type}: {_text(exc)}"
    else:
        return False
    final = decision.outcome == "failed"
    if final:
        what = "no attempts left: the job failed"
    else:
        when = decision.run_at.isoformat() if decision.run_at is not None else "soon"
        what = f"retrying at {when}"
    log.log(
        logging.ERROR if final else logging.WARNING,
        "job %d (kind %r, queue %r) attempt %d/%d %s; %s",
        job.id,
        job.kind,
        job.queue,
        job.attempt,
        job.max_attempts,
        cause,
        what,
        exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        extra={
            "event": "job_failed" if final else "job_retry",
            "job_id": job.id,
            "kind": job.kind,
            "queue": job.queue,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "outcome": decision.outcome,
            "error_type": error_type,
        },
    )
    return True


def _text(exc: BaseException) -> str:
    """``str(exc)`` that never raises: a handler's exception may have a broken ``__str__``,
    and logging its failure must not fail the attempt's bookkeeping."""
    try:
        return str(exc)[:2000] or "(no message)"
    except Exception:
        return "(unprintable message)"
