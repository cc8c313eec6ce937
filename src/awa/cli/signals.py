"""SIGINT and SIGTERM for a whole ``awa`` call, from argument parsing to the embedded
server's stop.

Why one owner: the embedded PostgreSQL is stopped only by the ``finally`` of the process
that started it. A signal that kills the process outright (SIGTERM's default action), or
a handler that some inner scope removes on exit (``loop.remove_signal_handler`` resets
SIGTERM to that default), leaves the server running for good. So the CLI installs plain
Python handlers once, for the whole call, and nothing below replaces them:

- before the event loop runs and while the embedded server starts or stops, a signal is
  only recorded (``pending``); ``check()`` turns it into ``KeyboardInterrupt`` at a point
  where the ``finally`` that stops the server is in place;
- while ``anyio.run`` runs, the handler wakes the loop (``call_soon_threadsafe``) and sets
  the ``stop`` event that the long-running verbs wait on (``serving.until_signal``); a
  verb that does not wait on it is cancelled, and so is any verb at a second signal.

``main`` may run in a thread other than the main one (the test suite calls it from worker
threads); signal handlers can only be installed from the main thread, so there the call
runs without them, as any library call would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from types import FrameType

import anyio

__all__ = ["StopSignals", "current", "handled_signals"]

#: The signals that stop a CLI call.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_current: ContextVar[StopSignals | None] = ContextVar("awa_cli_signals", default=None)


class StopSignals:
    """What the handlers saw, and how to reach the running event loop."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.stop: anyio.Event | None = None
        self.listening = 0  # verbs waiting on ``stop`` (they shut down gracefully)
        self._wake: Callable[[int], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> bool:
        return bool(self.received)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a signal arrived while it could not act."""
        if self.received:
            raise KeyboardInterrupt

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake, signum)

    def attach(self, wake: Callable[[int], None]) -> None:
        """Deliver signals to ``wake`` on the running loop (from inside ``anyio.run``)."""
        self._loop = asyncio.get_running_loop()
        self._wake = wake

    def detach(self) -> None:
        self._loop = None
        self._wake = None


def current() -> StopSignals | None:
    """The handlers of the running CLI call, if it could install them."""
    return _current.get()


@contextlib.contextmanager
def handled_signals() -> Iterator[StopSignals]:
    """Own SIGINT and SIGTERM until exit (main thread only), then restore the old ones."""
    state = StopSignals()
    token = _current.set(state)
    previous: dict[int, signal.Handlers | Callable[[int, FrameType | None], object] | int | None]
    previous = {}
    try:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                if handler == signal.SIG_IGN:  # as Python does: a parent's "ignore" holds
                    continue
                previous[signum] = handler
                signal.signal(signum, state.handle)
        yield state
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler if handler is not None else signal.SIG_DFL)
        _current.reset(token)
