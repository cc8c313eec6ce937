"""Typed errors raised by awa.

Every error a caller can provoke with bad input names the field and the value that was wrong,
so a log line or a CLI message is enough to fix the call without reading our source.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AwaError",
    "ConfigError",
    "DatabaseUnavailable",
    "InvalidTransition",
    "JobNotFound",
    "MigrationError",
    "RuntimeStateError",
    "ValidationError",
]


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
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"invalid {field}={shown}: {reason}")


class ConfigError(AwaError):
    """The configuration (URL, environment, options) cannot work."""


class DatabaseUnavailable(AwaError, ConnectionError):
    """PostgreSQL could not be reached or dropped the connection; the call may be retried."""


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


class RuntimeStateError(AwaError, RuntimeError):
    """A lifecycle call (start, shutdown) raced another one or came in the wrong order."""


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
