"""Typed errors raised by awa.

Every error a caller can provoke with bad input names the field and the value that was wrong,
so a log line or a CLI message is enough to fix the call without reading our source.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "AwaError",
    "CallbackAlreadyResolved",
    "CallbackError",
    "CallbackExpired",
    "CallbackNotFound",
    "CallbackTokenInvalid",
    "ConfigError",
    "ConfirmationExceeded",
    "DatabaseBusy",
    "DatabaseConflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "DeadLetterConflict",
    "DeadLetterNotFound",
    "InvalidTransition",
    "JobNotFound",
    "LeadershipLost",
    "MigrationError",
    "RuntimeStateError",
    "SyncCallTimeout",
    "SyncClientClosed",
    "ValidationError",
    "WorkerCrashLoop",
]


_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = 100
_REPR.maxother = 100
_REPR.maxlong = 60


class AwaError(Exception):
    """Base class of every error awa raises on purpose."""


class ValidationError(AwaError, ValueError):
    """A value passed to awa is not acceptable; nothing was written.

    ``field`` names the argument, ``value`` is what was given (shortened for display) and
    ``reason`` says what would have been accepted.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        shown = safe_repr(value)
        super().__init__(f"invalid {field}={shown}: {reason}")


def safe_repr(value: Any, limit: int = 120) -> str:
    """A bounded repr that cannot itself fail: deep nesting and huge integers make the
    builtin ``repr`` raise, and an error message must never be the thing that crashes."""
    try:
        shown = _REPR.repr(value)
    except Exception:
        shown = f"<unprintable {type(value).__name__}>"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class ConfigError(AwaError):
    """The configuration (URL, environment, options) cannot work."""


class DatabaseUnavailable(AwaError, ConnectionError):
    """PostgreSQL could not be reached or dropped the connection; the call may be retried."""


class PoolExhausted(DatabaseUnavailable):
    """No pooled connection became free within the acquire timeout: every one is in use
    (often by the application's own long transactions). Nothing was done; the call may be
    retried, and callers that retry on ``DatabaseUnavailable`` retry this too."""


class DatabaseConflict(DatabaseUnavailable):
    """PostgreSQL aborted the transaction to break a deadlock or a serialization conflict;
    nothing was written and the call may be retried (callers that retry on
    ``DatabaseUnavailable`` retry this too)."""


class LeadershipLost(AwaError):
    """A maintenance transaction was refused because a newer leadership term began: this
    process no longer leads (its leader lock was lost and another process took over, ADR
    012). Nothing was written. Not a ``DatabaseUnavailable`` on purpose: callers that retry
    on that must not retry this; the leader stops leading instead. ``term`` is the term the
    refused transaction was fenced by."""

    def __init__(self, term: int) -> None:
        self.term = term
        super().__init__(f"leadership term {term} is over: a newer maintenance leader took over")


class DatabaseBusy(DatabaseUnavailable):
    """PostgreSQL interrupted the statement but the connection is fine: a statement or lock
    timeout, ``pg_cancel_backend``, a read-only transaction right after a failover, the
    server out of resources. Nothing was written; the call may be retried with backoff.
    ``sqlstate`` is the server's code."""

    def __init__(self, sqlstate: str, message: str) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class DatabaseError(AwaError):
    """PostgreSQL refused a statement for a reason retrying will not fix (a bug or a
    misconfiguration, e.g. a permission); ``sqlstate`` is the server's code."""

    def __init__(self, sqlstate: str, message: str) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class MigrationError(AwaError):
    """The schema is missing, too old, or newer than this version of awa understands."""


class JobNotFound(AwaError, LookupError):
    """No job has the given id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id={job_id}")


class ScheduleNotFound(AwaError, LookupError):
    """No cron schedule has the given name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no cron schedule named {name!r}")


class InvalidTransition(AwaError):
    """The job exists but is in a state that does not allow the requested change."""

    def __init__(self, job_id: int, state: str, action: str) -> None:
        self.job_id = job_id
        self.state = state
        self.action = action
        super().__init__(f"cannot {action} job id={job_id} in state {state!r}")


class ConfirmationExceeded(AwaError):
    """A bulk action's filter now matches more jobs than the operator confirmed: nothing
    was done; show the new count and ask again (an operator never acts on more jobs than
    they saw)."""

    def __init__(self, action: str, confirmed: int, matching: int) -> None:
        self.action = action
        self.confirmed = confirmed
        self.matching = matching
        super().__init__(
            f"{action}: the filter now matches {matching} jobs, more than the {confirmed} "
            "confirmed; nothing was done"
        )


class RuntimeStateError(AwaError, RuntimeError):
    """A lifecycle call (start, shutdown) raced another one or came in the wrong order."""


class WorkerCrashLoop(AwaError, RuntimeError):
    """A worker process kept dying: ``awa worker --processes`` (``awa.run_processes``)
    restarted it more often than its restart policy allows and stopped the others rather
    than restart it forever. The message names the process and its last exit code."""


class SyncClientClosed(AwaError, RuntimeError):
    """The ``SyncClient`` was closed: before this call (nothing was done), or while the call
    was in flight and still unfinished after the close's grace period (it was cancelled;
    whether its statement committed is unknown, so give inserts a ``unique_key`` when a
    retry must not enqueue twice)."""


class SyncCallTimeout(AwaError, TimeoutError):
    """A ``SyncClient`` call did not finish within its ``call_timeout``; it was cancelled
    in the client's event loop. Like any cancelled statement, it may or may not have
    committed."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"the call did not finish within call_timeout={timeout:g}s")


class StartupRecoveryError(AwaError):
    """Startup recovery (requeueing work held by dead runtimes) kept failing until its retry
    policy was exhausted; the runtime did not start."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"startup recovery failed {attempts} time(s); last error: "
            f"{type(last_error).__name__}: {last_error}"
        )


class DeadLetterNotFound(AwaError, LookupError):
    """No dead letter has the given id (it never failed into the hold, or was purged or
    expired)."""

    def __init__(self, dead_letter_id: int) -> None:
        self.dead_letter_id = dead_letter_id
        super().__init__(f"no dead letter with id={dead_letter_id}")


class DeadLetterConflict(AwaError):
    """A dead letter cannot be retried; nothing was changed.

    ``reason`` says why (already retried, or its unique key is held by another job) and
    ``job_id`` names the job in the way (the earlier retry's job, or the key's holder) when
    there is one.
    """

    def __init__(self, dead_letter_id: int, reason: str, job_id: int | None = None) -> None:
        self.dead_letter_id = dead_letter_id
        self.reason = reason
        self.job_id = job_id
        super().__init__(f"cannot retry dead letter id={dead_letter_id}: {reason}")


class CallbackError(AwaError):
    """A callback resolution was refused; nothing was changed. ``callback_id`` names it."""

    def __init__(self, callback_id: str, message: str) -> None:
        self.callback_id = callback_id
        super().__init__(message)


class CallbackNotFound(CallbackError, LookupError):
    """No callback was ever registered under this id (or it was forgotten by retention)."""

    def __init__(self, callback_id: str) -> None:
        super().__init__(callback_id, f"no callback with id={callback_id}")


class CallbackTokenInvalid(CallbackError):
    """The token does not match the callback's: the caller is not the party it was given to."""

    def __init__(self, callback_id: str) -> None:
        super().__init__(callback_id, f"wrong token for callback id={callback_id}")


class CallbackAlreadyResolved(CallbackError):
    """The callback was resolved before (``state``: completed, failed or retried)."""

    def __init__(self, callback_id: str, state: str) -> None:
        self.state = state
        super().__init__(callback_id, f"callback id={callback_id} was already resolved ({state})")


class CallbackExpired(CallbackError):
    """The job no longer waits for this callback: it timed out, or the job moved on
    (rescued, retried, cancelled) before the resolution arrived."""

    def __init__(self, callback_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(callback_id, f"callback id={callback_id} has expired: {reason}")


class HttpWorkerError(AwaError):
    """An HTTP worker's target did not accept the job (non-2xx answer, timeout, connection
    failure); the attempt fails and the job's normal retry rules apply."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(f"POST {url}: {message}")
