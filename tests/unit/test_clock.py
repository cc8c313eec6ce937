"""The clocks: the system one defers SQL time to PostgreSQL, the fake one moves on command."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio

from awa.clock import FakeClock, SystemClock, sleep_unless, utcnow


def test_system_clock_is_aware_utc_and_leaves_sql_time_to_the_database() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC and utcnow().tzinfo is UTC
    assert clock.db_now() is None  # type: ignore[func-returns-value]
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_fake_clock_only_moves_when_advanced() -> None:
    start = datetime(2031, 5, 1, tzinfo=UTC)
    clock = FakeClock(start)
    assert clock.now() == clock.db_now() == start and clock.monotonic() == 0.0
    clock.advance(90)
    assert clock.now() == start + timedelta(seconds=90) and clock.monotonic() == 90.0


async def test_fake_sleep_wakes_exactly_when_time_has_come() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, 10)
        tg.start_soon(sleeper, 3)
        await anyio.wait_all_tasks_blocked()
        clock.advance(2)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.advance(1)
        await anyio.wait_all_tasks_blocked()
        assert woke == [3.0]
        clock.advance(7)
    assert woke == [3.0, 10.0]


async def test_fake_sleep_of_zero_or_less_returns_at_once() -> None:
    clock = FakeClock()
    with anyio.fail_after(1):
        await clock.sleep(0)
        await clock.sleep(-5)


async def test_sleep_unless_on_the_real_clock_ends_at_the_event_or_never_before_its_time() -> None:
    clock = SystemClock()
    event = anyio.Event()
    started = time.monotonic()
    await sleep_unless(clock, event, 0.02)
    assert time.monotonic() - started >= 0.02  # a timer: never early
    event.set()
    with anyio.fail_after(5):
        await sleep_unless(clock, event, 60.0)  # set: returns at once, not in a minute


async def test_sleep_unless_on_the_fake_clock_follows_advance_or_the_event() -> None:
    clock = FakeClock()
    event = anyio.Event()
    ended: list[str] = []

    async def sleep(label: str) -> None:
        await sleep_unless(clock, event, 5)
        ended.append(label)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleep, "timer")
        await anyio.wait_all_tasks_blocked()
        clock.advance(4)
        await anyio.wait_all_tasks_blocked()
        assert ended == []
        clock.advance(1)
        await anyio.wait_all_tasks_blocked()
        assert ended == ["timer"]
        tg.start_soon(sleep, "event")
        await anyio.wait_all_tasks_blocked()
        event.set()
    assert ended == ["timer", "event"]


async def test_sleep_unless_uses_a_clock_s_own_sleep() -> None:
    """A clock that overrides ``sleep`` (an application's own, even one built on the real
    clock) is slept by its ``sleep``, not by a timer of the event loop."""

    class Recording(SystemClock):
        def __init__(self) -> None:
            self.slept: list[float] = []

        async def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)

    clock = Recording()
    with anyio.fail_after(5):
        await sleep_unless(clock, anyio.Event(), 30.0)
    assert clock.slept == [30.0]
