"""How a runtime background loop survives an error (ADR 014).

Every long-lived loop of a runtime (heartbeat, completion flush, claim, liveness, presence,
LISTEN) meets database errors sooner or later: a dropped connection, a statement timeout, a
cancelled query, a read-only standby after a failover. None of them may end the runtime:
the loop logs the error, counts it (``awa.runtime.loop.errors`` with ``awa.runtime.loop``
and ``error.type``), sleeps a capped, jittered backoff and goes on. An expected database
error (``DatabaseUnavailable`` and its subclasses) is a WARNING; anything else is a bug or
a misconfiguration and is logged at ERROR with its traceback, but is survived all the same:
a loop that stops silently is worse than one that keeps reporting it is failing.
"""

from __future__ import annotations

import logging

from awa.backoff import Backoff
from awa.clock import Clock
from awa.errors import DatabaseUnavailable
from awa.telemetry import ATTR_ERROR_TYPE, Instruments
from awa.telemetry.attributes import ATTR_LOOP

__all__ = ["LoopErrors"]

log = logging.getLogger("awa.runtime")

_DEFAULT_BACKOFF = Backoff(base=0.1, factor=2.0, cap=5.0, jitter=0.2)


class LoopErrors:
    """The error policy of one named loop: ``await failed(exc, what)`` after an error (logs,
    counts, backs off), ``succeeded()`` after a good pass (resets the backoff)."""

    def __init__(
        self,
        loop: str,
        clock: Clock,
        metrics: Instruments,
        backoff: Backoff = _DEFAULT_BACKOFF,
    ) -> None:
        self.loop = loop
        self._clock = clock
        self._metrics = metrics
        self._backoff = backoff
        self.failures = 0  #: consecutive failures
        self.total = 0  #: every failure since the loop started

    def succeeded(self) -> None:
        self.failures = 0

    def delay(self) -> float:
        """The backoff before the next try (grows with consecutive failures)."""
        return self._backoff.delay(min(max(self.failures, 1), 20))

    def record(self, exc: Exception, what: str) -> float:
        """Log and count ``exc``; return the backoff to sleep before the next try."""
        self.failures += 1
        self.total += 1
        self._metrics.loop_errors.add(
            1, {ATTR_LOOP: self.loop, ATTR_ERROR_TYPE: type(exc).__name__}
        )
        delay = self.delay()
        if isinstance(exc, DatabaseUnavailable):
            log.warning("%s failed (%s); retry in %.2fs", what, exc, delay)
        else:
            log.error(
                "%s failed unexpectedly (%s: %s); retry in %.2fs",
                what,
                type(exc).__name__,
                exc,
                delay,
                exc_info=exc,
            )
        return delay

    async def failed(self, exc: Exception, what: str) -> None:
        """``record`` the error, then sleep its backoff."""
        await self._clock.sleep(self.record(exc, what))
