"""``CallableSink``: hand each event to a Python function (alerting glue, metrics, tests).

An ``async def`` function is awaited on the delivery branch's event loop; a plain function
runs in a worker thread so a blocking call (a synchronous HTTP client, a file write) cannot
stall the maintenance lane. Either way the branch bounds each call with its
``delivery_timeout``; a thread that overruns is abandoned, not killed, so a sync function
should still have timeouts of its own.

Raise ``EventRejected`` to refuse one event; any other exception counts as the sink being
unavailable (the sink is backed off and nothing is parked).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread

from awa.events.model import Event, check_kinds
from awa.events.sink import Deliver, check_sink_name

__all__ = ["CallableSink"]

EventFunction = Callable[[Event], Awaitable[None]] | Callable[[Event], None]


class CallableSink:
    def __init__(
        self, name: str, function: EventFunction, *, kinds: Iterable[str] | None = None
    ) -> None:
        if not callable(function):
            raise TypeError(f"CallableSink {name!r}: {function!r} is not callable")
        self._name = check_sink_name(name)
        self._kinds = check_kinds(f"sinks[{name!r}].kinds", kinds)
        self._function = function
        # An async callable object has an ``async def __call__``.
        self._is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            type(function).__call__
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def kinds(self) -> frozenset[str] | None:
        return self._kinds

    def __repr__(self) -> str:
        return f"<CallableSink {self._name} kinds={sorted(self._kinds or ['*'])}>"

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Deliver]:
        yield self._deliver

    async def _deliver(self, event: Event) -> None:
        if self._is_async:
            result = self._function(event)
            if inspect.isawaitable(result):
                await result
            return
        result = await anyio.to_thread.run_sync(
            partial(self._function, event), abandon_on_cancel=True
        )
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            await result
