"""Event-loop lag: how long the runtime's loop could run nothing, and which handler did it.

Handlers share the runtime's event loop with the dispatchers, the heartbeat, completion
flushing and the presence checks. A handler that does blocking work between two awaits (a
sync HTTP client, CPU-bound parsing, ``time.sleep``) stalls all of them. Maintenance runs on
its own loop (ADR 013), but the cause still has to be found and fixed, so:

- ``traced(awaitable, kind, job_id)`` wraps a handler's coroutine. Each *step* (one
  ``send``/``throw``: the run between two suspensions) marks itself as the loop's current
  step, timed with two ``perf_counter`` calls; a step of ``LONG_STEP`` or more is remembered
  in a small per-thread ring (kind, job id, duration, end time). That is the whole per-step
  cost: no lock, no allocation unless the step was long.
- ``LoopMonitor`` sleeps ``interval`` (0.1 s) over and over, measuring with the monotonic
  clock how late each wake-up is. Every lateness is recorded in the histogram
  ``awa.runtime.event_loop.lag`` (seconds); one of ``threshold`` (0.2 s) or more logs a
  WARNING naming the longest handler step that ended while the monitor slept: the job kind
  and id that blocked the loop and for how long. A lag no handler step explains is reported
  as such (synchronous code elsewhere in the process, or a handler's own child tasks,
  which are not traced).

The monitor cannot name a handler *while* it blocks (it runs on the blocked loop); it names
it right after. One event loop runs per thread at a time, so the step slot is per thread:
several runtimes sharing one loop share it, and each of their monitors names the same step.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Awaitable, Generator, Iterator
from contextvars import Context, copy_context
from dataclasses import dataclass
from time import perf_counter
from types import CoroutineType, TracebackType
from typing import Any, Generic, TypeVar, cast

import anyio
from anyio.abc import TaskStatus

from awa.telemetry import Instruments

__all__ = ["LONG_STEP", "LongStep", "LoopMonitor", "StepSlot", "step_slot", "traced"]

log = logging.getLogger("awa.runtime")

#: A handler step at least this long is remembered for naming (shorter ones cost nothing).
LONG_STEP = 0.05
_RING = 32

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class LongStep:
    """One handler step that ran ``seconds`` without yielding, ending at ``ended``
    (``perf_counter`` time)."""

    kind: str
    job_id: int
    seconds: float
    ended: float


class StepSlot:
    """What this thread's event loop is running: the handler step in progress (``current``,
    since ``started``) and the recent long steps."""

    __slots__ = ("current", "recent", "started")

    def __init__(self) -> None:
        self.current: _Traced[Any] | None = None
        self.started = 0.0
        self.recent: deque[LongStep] = deque(maxlen=_RING)

    def longest_between(self, start: float, end: float) -> LongStep | None:
        """The longest remembered step that ended in ``(start, end]``."""
        steps = [s for s in self.recent if start < s.ended <= end]
        return max(steps, key=lambda s: s.seconds, default=None)


_local = threading.local()


def step_slot() -> StepSlot:
    """This thread's slot (created on first use)."""
    slot: StepSlot | None = getattr(_local, "slot", None)
    if slot is None:
        slot = _local.slot = StepSlot()
    return slot


def traced(
    awaitable: Awaitable[_T], kind: str, job_id: int, *, own_context: bool = False
) -> Awaitable[_T]:
    """``awaitable`` (a handler's coroutine), with each of its steps timed and attributed to
    job ``job_id`` of ``kind``; awaiting it is otherwise the same. With ``own_context`` every
    step runs in a copy of the caller's context taken now, so context variables the handler
    sets stay its own (as in a task of its own) although the worker task is reused."""
    return _Traced(awaitable, kind, job_id, copy_context() if own_context else None)


class _Traced(Generic[_T]):
    """The awaitable ``traced`` returns: a coroutine-protocol iterator over the handler's.

    ``await`` delegates ``send``/``throw``/``close`` to this object as it would to the
    coroutine itself (values, exceptions and cancellation pass through unchanged)."""

    __slots__ = ("_context", "_it", "_slot", "job_id", "kind")

    def __init__(
        self, awaitable: Awaitable[_T], kind: str, job_id: int, context: Context | None = None
    ) -> None:
        if isinstance(awaitable, CoroutineType):
            self._it: Any = awaitable
        elif hasattr(awaitable, "__await__"):
            self._it = awaitable.__await__()
        else:  # what ``await`` itself would say (a handler that is not async, say)
            name = type(awaitable).__name__
            raise TypeError(f"object {name} can't be used in 'await' expression")
        self._slot = step_slot()
        self._context = context
        self.kind = kind
        self.job_id = job_id

    def __await__(self) -> Generator[Any, None, _T]:
        return cast("Generator[Any, None, _T]", self)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        slot = self._slot
        slot.current = self
        slot.started = started = perf_counter()
        try:
            if self._context is None:
                return self._it.send(value)
            return self._context.run(self._it.send, value)
        finally:
            took = perf_counter() - started
            slot.current = None
            if took >= LONG_STEP:
                slot.recent.append(LongStep(self.kind, self.job_id, took, started + took))

    def throw(
        self, typ: Any, val: Any = None, tb: TracebackType | None = None
    ) -> Any:  # the iterator protocol's legacy signature: CPython may pass all three
        exc = _as_exception(typ, val, tb)
        slot = self._slot
        slot.current = self
        slot.started = started = perf_counter()
        try:
            if self._context is None:
                return self._it.throw(exc)
            return self._context.run(self._it.throw, exc)
        finally:
            took = perf_counter() - started
            slot.current = None
            if took >= LONG_STEP:
                slot.recent.append(LongStep(self.kind, self.job_id, took, started + took))

    def close(self) -> None:
        if self._context is None:
            self._it.close()
        else:
            self._context.run(self._it.close)


def _as_exception(typ: Any, val: Any, tb: TracebackType | None) -> BaseException:
    """One exception instance from ``throw``'s (type, value, traceback) arguments, so the
    single-argument ``throw`` (the only one Python 3.12+ does not deprecate) can carry it."""
    if isinstance(typ, BaseException):
        exc = typ
    elif isinstance(val, BaseException):
        exc = val
    elif val is None:
        exc = typ()
    else:
        exc = typ(*val) if isinstance(val, tuple) else typ(val)
    return exc if tb is None else exc.with_traceback(tb)


class LoopMonitor:
    """Measure the lag of the loop it runs on; warn naming the handler that caused it.

    ``interval``: the monitor's sleep (default 0.1 s), ``threshold``: the lag that logs a
    warning (default 0.2 s), ``name``: who owns the loop, for the log (the runtime's
    instance id)."""

    def __init__(
        self,
        metrics: Instruments,
        *,
        name: str,
        interval: float = 0.1,
        threshold: float = 0.2,
    ) -> None:
        if interval <= 0 or threshold <= 0:
            raise ValueError("interval and threshold must be > 0")
        self.name = name
        self.interval = interval
        self.threshold = threshold
        self._metrics = metrics
        self.samples = 0  #: lag measurements taken
        self.warnings = 0  #: lags over the threshold

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        slot = step_slot()
        task_status.started()
        while True:
            before = perf_counter()
            await anyio.sleep(self.interval)
            woke = perf_counter()
            lag = max(0.0, woke - before - self.interval)
            self.samples += 1
            self._metrics.event_loop_lag.record(lag)
            if lag >= self.threshold:
                self.warnings += 1
                self._warn(lag, slot.longest_between(before, woke))

    def _warn(self, lag: float, step: LongStep | None) -> None:
        if step is not None and step.seconds >= lag / 2:
            log.warning(
                "event loop of %s was blocked for %.3fs: the handler of job %d (kind %r) "
                "ran %.3fs without awaiting; handlers must not block the loop (run sync "
                "or CPU-bound work with anyio.to_thread.run_sync)",
                self.name,
                lag,
                step.job_id,
                step.kind,
                step.seconds,
            )
            return
        longest = (
            "none" if step is None else f"job {step.job_id} ({step.kind!r}, {step.seconds:.3f}s)"
        )
        log.warning(
            "event loop of %s was blocked for %.3fs, and no single handler step explains "
            "it (longest: %s): synchronous code outside handlers, many short handler steps, "
            "or a task a handler started blocked it",
            self.name,
            lag,
            longest,
        )
