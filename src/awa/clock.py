"""One clock for all of awa, so tests can control time.

``Clock.db_now()`` is what SQL receives as its ``$now`` parameter: the system clock answers
``None`` so PostgreSQL uses its own ``now()`` (one time source for every process), while
``FakeClock`` answers its pinned time so a test can move "now" forward without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio

__all__ = ["Clock", "FakeClock", "SystemClock", "sleep_unless", "utcnow"]


def utcnow() -> datetime:
    """The current wall-clock time as an aware UTC datetime."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Wall time, monotonic time, sleep, and the ``now`` handed to SQL."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def db_now(self) -> datetime | None: ...


class SystemClock:
    """The real clock. SQL uses the database's ``now()``."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def db_now(self) -> None:
        return None


class FakeClock:
    """A clock that only moves when told to.

    ``sleep`` waits until ``advance`` has moved the clock past the sleeper's wake time, so a
    test drives periodic loops deterministically with no wall-clock waits.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._mono = 0.0
        self._changed = anyio.Event()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def db_now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake every sleeper whose time has come."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def sleep(self, seconds: float) -> None:
        wake_at = self._mono + max(0.0, seconds)
        while self._mono < wake_at:
            await self._changed.wait()


async def sleep_unless(clock: Clock, event: anyio.Event, seconds: float) -> None:
    """Sleep ``seconds`` by ``clock``, or less if ``event`` is set meanwhile.

    The real clock's sleep is a timer, so the wait is one deadline on the waiting task: a
    scheduled job's promotion waits here, and racing two helper tasks (start both, cancel
    the loser, join) added ~0.4 ms of loop work after the timer fired (issue 16, ADR 044).
    Any other clock's sleep (``FakeClock``, an application's own) may be anything but a
    timer, so it races ``event.wait()`` in two tasks, as every sleep did before."""
    if isinstance(clock, SystemClock) and type(clock).sleep is SystemClock.sleep:
        with anyio.move_on_after(max(0.0, seconds)):
            await event.wait()
        return
    async with anyio.create_task_group() as tg:

        async def sleeper() -> None:
            await clock.sleep(seconds)
            tg.cancel_scope.cancel()

        async def waker() -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(sleeper)
        tg.start_soon(waker)
