"""What a handler may return or raise instead of a plain result: snooze, retry after a
delay, cancel, or park the job on an external callback.

Exceptions on purpose: a handler can end its attempt from deep inside its own call stack
(``raise Snooze(30)``), and returning the same object works too. The worker turns each into
a database decision in ``awa.worker.outcomes``.
"""

from __future__ import annotations

from datetime import timedelta

from awa.errors import ValidationError
from awa.model import Callback
from awa.validation import to_seconds

__all__ = ["Cancel", "Outcome", "RetryAfter", "Snooze", "WaitForCallback"]


class Outcome(Exception):
    """Base of the non-error results a handler may return or raise."""


class Snooze(Outcome):
    """Run the job again after ``delay`` without counting this attempt."""

    def __init__(self, delay: float | timedelta) -> None:
        self.delay = to_seconds("delay", delay, allow_zero=True) or 0.0
        super().__init__(f"snooze {self.delay}s")


class RetryAfter(Outcome):
    """Count this attempt as failed and retry after exactly ``delay`` (no backoff)."""

    def __init__(self, delay: float | timedelta, reason: str = "retry requested") -> None:
        self.delay = to_seconds("delay", delay, allow_zero=True) or 0.0
        self.reason = reason
        super().__init__(f"retry after {self.delay}s: {reason}")


class Cancel(Outcome):
    """Stop the job for good: state ``cancelled``, ``reason`` recorded."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        self.reason = reason
        super().__init__(reason)


class WaitForCallback(Outcome):
    """Park the job (``waiting_external``) until ``callback`` is resolved or times out.

    Return (or raise) it after registering the callback and handing it to the external
    system. The attempt ends here; what happens next is the resolution's: completion records
    the payload as the result (or runs the handler again with ``ctx.callback`` when the
    callback was registered with ``resume=True``), ``fail`` fails the job, ``retry`` counts a
    failed attempt, and a timeout is retried or failed by maintenance.
    """

    def __init__(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise ValidationError(
                "callback", callback, "expected the Callback returned by ctx.register_callback"
            )
        self.callback = callback
        super().__init__(f"wait for callback {callback.id}")
