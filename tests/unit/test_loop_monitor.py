"""The event-loop lag monitor and the handler-step tracer (``awa.worker.loop_monitor``).

``traced`` must be invisible to the handler it wraps (values, exceptions, cancellation and
close pass through) while it times each step and remembers the long ones; ``LoopMonitor``
must record every lag sample in ``awa.runtime.event_loop.lag`` (read back through the SDK's
in-memory reader) and warn, naming the job, when a handler step blocked the loop. The
per-step cost is measured and printed, never asserted.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import types
from collections.abc import Generator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from awa.telemetry import EVENT_LOOP_LAG, Instruments
from awa.worker.loop_monitor import LONG_STEP, LoopMonitor, step_slot, traced
from support.chaos import wait_for

BLOCK = 0.5


@types.coroutine
def suspend() -> Generator[None, None, None]:
    """One bare suspension: the step before it ends, the next begins."""
    yield


def lag_points(reader: InMemoryMetricReader) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == EVENT_LOOP_LAG
        for p in m.data.data_points
        if isinstance(p, HistogramDataPoint)
    ]


# ----------------------------------------------------------------------------- traced


async def test_traced_is_transparent_for_values_and_exceptions() -> None:
    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    async def fail() -> None:
        await anyio.lowlevel.checkpoint()
        raise KeyError("boom")

    assert await traced(answer(), "k", 1) == 42
    with pytest.raises(KeyError, match="boom"):
        await traced(fail(), "k", 2)
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, "not a coroutine")
    assert await traced(future, "k", 3) == "not a coroutine"
    with pytest.raises(TypeError, match="object NoneType can't be used in 'await' expression"):
        await traced(None, "k", 4)  # type: ignore[arg-type]


async def test_traced_passes_cancellation_through_and_lets_the_handler_clean_up() -> None:
    cleaned: list[str] = []

    async def handler() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cleaned.append("finally ran")

    with anyio.move_on_after(0.01) as scope:
        await traced(handler(), "k", 1)
    assert scope.cancelled_caught
    assert cleaned == ["finally ran"]
    assert step_slot().current is None


def test_throw_accepts_the_legacy_three_argument_form() -> None:
    async def handler() -> str:
        try:
            await suspend()
        except ValueError as exc:
            return f"caught {exc}"
        return "not reached"

    wrapped: Any = traced(handler(), "k", 1).__await__()
    wrapped.send(None)
    with pytest.raises(StopIteration) as stop:
        wrapped.throw(ValueError, ValueError("legacy"), None)
    assert stop.value.value == "caught legacy"
    closing: Any = traced(handler(), "k", 2).__await__()
    closing.send(None)
    closing.close()  # GeneratorExit reaches the handler; nothing leaks


async def test_each_step_is_marked_current_and_long_ones_are_remembered() -> None:
    slot = step_slot()
    seen: list[tuple[str, int]] = []

    async def handler() -> None:
        current = step_slot().current
        assert current is not None
        seen.append((current.kind, current.job_id))
        await suspend()
        time.sleep(2 * LONG_STEP)  # noqa: ASYNC251 - one long step
        await suspend()

    before = time.perf_counter()
    await traced(handler(), "long", 7)
    after = time.perf_counter()
    assert seen == [("long", 7)]
    assert slot.current is None
    step = slot.longest_between(before, after)
    assert step is not None and (step.kind, step.job_id) == ("long", 7)
    assert step.seconds >= 2 * LONG_STEP
    # Short steps leave no trace.
    quiet_from = time.perf_counter()
    await traced(handler_with_short_steps(), "short", 8)
    assert slot.longest_between(quiet_from, time.perf_counter()) is None


async def handler_with_short_steps() -> None:
    for _ in range(100):
        await suspend()


# ------------------------------------------------------------------------ the monitor


async def test_a_blocked_loop_is_measured_and_the_blocking_job_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="awa.runtime")
    reader = InMemoryMetricReader()
    monitor = LoopMonitor(
        Instruments(MeterProvider(metric_readers=[reader])),
        name="rt-1",
        interval=0.02,
        threshold=0.2,
    )

    async def cpu_bound() -> None:
        await anyio.sleep(0.05)
        time.sleep(BLOCK)  # noqa: ASYNC251 - the fault under test

    async with anyio.create_task_group() as tg:
        await tg.start(monitor.run)
        await traced(cpu_bound(), "crunch", 1234)
        # The monitor wakes right after the block.
        await wait_for(lambda: monitor.warnings > 0, 10, what="the warning")
        tg.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "rt-1" in warnings[0]
    assert "job 1234 (kind 'crunch')" in warnings[0]
    (point,) = lag_points(reader)
    assert point.count == monitor.samples >= 2
    assert point.max >= monitor.threshold  # the sample that warned


async def test_a_lag_no_handler_explains_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="awa.runtime")
    monitor = LoopMonitor(Instruments(MeterProvider()), name="rt-2", interval=0.02)
    async with anyio.create_task_group() as tg:
        await tg.start(monitor.run)
        await anyio.sleep(0.05)
        time.sleep(BLOCK)  # noqa: ASYNC251 - blocking outside any handler
        await wait_for(lambda: monitor.warnings > 0, 10, what="the warning")
        tg.cancel_scope.cancel()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "no single handler step explains it" in warning


def test_monitor_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="> 0"):
        LoopMonitor(Instruments(MeterProvider()), name="x", interval=0)


# --------------------------------------------------------------------------- the cost


def test_step_overhead_is_measured(request: pytest.FixtureRequest) -> None:
    """Two perf_counter calls and a few stores per step: printed, not asserted."""
    steps = 200_000

    async def handler() -> None:
        for _ in range(steps):
            await suspend()

    def drive(wrap: bool) -> float:
        coro = handler()
        it: Any = (traced(coro, "bench", 1) if wrap else coro).__await__()
        started = time.perf_counter()
        with pytest.raises(StopIteration):
            while True:
                it.send(None)
        return time.perf_counter() - started

    bare = statistics.median(drive(False) for _ in range(5))
    wrapped = statistics.median(drive(True) for _ in range(5))
    line = (
        f"traced handler step: {bare / steps * 1e9:.0f} ns bare, "
        f"{wrapped / steps * 1e9:.0f} ns traced (+{(wrapped - bare) / steps * 1e9:.0f} ns)"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)
