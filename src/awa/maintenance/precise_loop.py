"""An event loop whose timers fire when asked, for the maintenance thread (ADR 044).

asyncio's selector loop on Linux waits with ``epoll_wait``, whose timeout is whole
milliseconds: Python rounds every wait *up* to the next millisecond, and the kernel adds
its own slack on top. A timer due in 3.2 ms fires after 4 ms or more; measured on this
project's 2-core VM, ``asyncio.sleep`` ended 0.73 ms late at the median and 2.1 ms at p99.
The promotion branch sleeps until the next job is due, so that overshoot was the largest
single part of a scheduled job's lateness (issue 16, ``benchmarks/promotion_stages.py``).

The selector (``PRECISE_SELECTOR``) waits on the epoll descriptor itself with
``select(2)``, whose timeout has microsecond resolution (the descriptor turns readable
when any registered event is ready), then collects the ready events with a non-blocking
``epoll_wait``. The same sleep then ends 0.17 ms late at the median, 0.32 ms at p99. The
cost is one extra system call per wait that has a timeout; the maintenance loop waits a
few hundred times a second at most, so it is negligible there. Where ``select(2)`` cannot
take the descriptor (a number past ``FD_SETSIZE``), it logs a warning and falls back to
the millisecond wait for good.

Only loops awa owns use it (the maintenance thread's); the application's loop is its own.
Platforms whose default selector is not epoll (kqueue has nanosecond timeouts) keep the
default loop.
"""

from __future__ import annotations

import asyncio
import logging
import select
import selectors
from collections.abc import Callable

__all__ = ["precise_loop_factory"]

log = logging.getLogger("awa.maintenance")

_Ready = list[tuple[selectors.SelectorKey, int]]


def _precise_selector_class() -> type[selectors.BaseSelector] | None:
    """The epoll selector with microsecond waits, or None without epoll (the class is
    built only where ``selectors.EpollSelector`` exists: elsewhere, importing this module
    must not fail)."""
    epoll = getattr(selectors, "EpollSelector", None)
    if epoll is None:
        return None

    class PreciseEpollSelector(epoll):  # type: ignore[misc,valid-type]
        """An epoll selector whose timeouts have microsecond, not millisecond, resolution."""

        def __init__(self) -> None:
            super().__init__()
            #: The epoll descriptor, fixed for the selector's life; None once select(2)
            #: refused it (past FD_SETSIZE): millisecond waits from then on.
            self._wait_fd: int | None = self.fileno()

        def select(self, timeout: float | None = None) -> _Ready:
            fd = self._wait_fd
            if fd is not None and timeout is not None and timeout > 0:
                try:
                    select.select([fd], [], [], timeout)
                except ValueError:  # descriptor beyond FD_SETSIZE
                    self._wait_fd = None
                    log.warning(
                        "maintenance loop: epoll descriptor %d is beyond select()'s limit; "
                        "timers fall back to millisecond resolution",
                        fd,
                        extra={"event": "precise_timers_off"},
                    )
                else:
                    timeout = 0
            ready: _Ready = super().select(timeout)
            return ready

    return PreciseEpollSelector


#: ``PreciseEpollSelector`` where the platform has epoll, else None.
PRECISE_SELECTOR = _precise_selector_class()


def precise_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A loop factory for ``asyncio.Runner`` with precise timers, or None (the default
    loop) where the platform's default selector is not epoll."""
    selector = PRECISE_SELECTOR
    if selector is None or not issubclass(selector, selectors.DefaultSelector):
        return None
    return lambda: asyncio.SelectorEventLoop(selector())
