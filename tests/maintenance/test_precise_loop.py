"""The maintenance loop's selector (ADR 044): timeouts in microseconds, events as before.

What matters for correctness is that the finer wait changes nothing else: a ready
descriptor still ends a long wait at once, a wait with nothing ready never ends early,
and a descriptor ``select(2)`` cannot take falls back to epoll's own wait for good. (How
much sooner timers fire is a figure: ``benchmarks/promotion_stages.py``.)
"""

from __future__ import annotations

import asyncio
import select
import selectors
import socket
import time
from collections.abc import Iterator

import pytest

from awa.maintenance.precise_loop import PRECISE_SELECTOR, precise_loop_factory

pytestmark = pytest.mark.skipif(PRECISE_SELECTOR is None, reason="epoll is Linux-only")


def precise_selector() -> selectors.BaseSelector:
    assert PRECISE_SELECTOR is not None
    return PRECISE_SELECTOR()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_ready_descriptor_ends_a_long_wait_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    with precise_selector() as sel:
        sel.register(reader, selectors.EVENT_READ, "reader")
        writer.send(b"x")
        started = time.monotonic()
        ready = sel.select(timeout=30.0)
        assert time.monotonic() - started < 10.0  # not the 30 s timeout
    assert [(key.data, events) for key, events in ready] == [("reader", selectors.EVENT_READ)]


def test_a_wait_with_nothing_ready_lasts_its_whole_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, _ = pair
    with precise_selector() as sel:
        sel.register(reader, selectors.EVENT_READ)
        for timeout in (0.0004, 0.0027, 0.011):
            started = time.monotonic()
            assert sel.select(timeout=timeout) == []
            assert time.monotonic() - started >= timeout
        assert sel.select(timeout=0) == []


def test_a_descriptor_select_cannot_take_falls_back_to_epoll(
    pair: tuple[socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """select(2) refuses descriptors past FD_SETSIZE with ValueError; the selector then
    says so once and waits with epoll alone, still delivering events, and never tries
    select(2) again."""
    calls: list[float] = []

    def refuse(r: object, w: object, x: object, timeout: float) -> None:
        calls.append(timeout)
        raise ValueError("filedescriptor out of range in select()")

    monkeypatch.setattr(select, "select", refuse)
    reader, writer = pair
    with precise_selector() as sel:
        sel.register(reader, selectors.EVENT_READ, "reader")
        assert sel.select(timeout=0.002) == []
        writer.send(b"x")
        assert [key.data for key, _ in sel.select(timeout=5.0)] == ["reader"]
    assert calls == [0.002]
    assert [r.event for r in caplog.records] == ["precise_timers_off"]  # type: ignore[attr-defined]


def test_the_loop_factory_runs_coroutines_on_the_precise_selector() -> None:
    factory = precise_loop_factory()
    assert factory is not None  # Linux: epoll is the default selector

    async def which() -> type:
        await asyncio.sleep(0.001)
        return type(getattr(asyncio.get_running_loop(), "_selector", None))

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(which()) is PRECISE_SELECTOR
