"""An event loop whose timers fire when asked, for the maintenance thread (ADR 044).

asyncio's selector loop on Linux waits with ``epoll_wait``, whose timeout is whole
milliseconds: Python rounds every wait *up* to the next millisecond, and the kernel adds
its own slack on top. A timer due in 3.2 ms fires after 4 ms or more; measured on this
project's 2-core VM, ``asyncio.sleep`` ended 0.73 ms late at the median and 2.1 ms at p99.
The promotion branch sleeps until the next job is due, so that overshoot was the largest
single part of a scheduled job's lateness (issue 16, ``benchmarks/promotion_stages.py``).

``PreciseEpollSelector`` waits on the epoll descriptor itself with ``select(2)``, whose
timeout has microsecond resolution (the descriptor turns readable when any registered
event is ready), then collects the ready events with a non-blocking ``epoll_wait``. The
same sleep then ends 0.17 ms late at the median, 0.32 ms at p99. The cost is one extra
system call per wait that has a timeout; the maintenance loop waits a few hundred times a
second at most, so it is negligible there. Where ``select(2)`` cannot take the descriptor
(a number past ``FD_SETSIZE``), it falls back to the millisecond wait for good.

Only loops awa owns use it (the maintenance thread's); the application's loop is its own.
Platforms whose default selector is not epoll (kqueue has nanosecond timeouts) keep the
default loop.
"""

from __future__ import annotations

import asyncio
import select
import selectors
from collections.abc import Callable

__all__ = ["PreciseEpollSelector", "precise_loop_factory"]


class PreciseEpollSelector(selectors.EpollSelector):
    """An epoll selector whose timeouts have microsecond, not millisecond, resolution."""

    def __init__(self) -> None:
        super().__init__()
        self._precise = True

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._precise and timeout is not None and timeout > 0:
            try:
                select.select([self.fileno()], [], [], timeout)
            except ValueError:  # descriptor beyond FD_SETSIZE: millisecond waits from now on
                self._precise = False
            else:
                timeout = 0
        return super().select(timeout)


def precise_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A loop factory for ``asyncio.Runner`` with precise timers, or None (the default
    loop) where the platform's default selector is not epoll."""
    if not issubclass(selectors.DefaultSelector, selectors.EpollSelector):
        return None
    return lambda: asyncio.SelectorEventLoop(PreciseEpollSelector())
