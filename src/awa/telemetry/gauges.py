"""State behind the observable gauges: the last values the leader reported.

Queue depth, lag and pauses, branch intervals and delayed flags, and the outbox backlog are
*snapshots*, computed by maintenance branches on their own schedule; the exporter asks for
them whenever it collects. So the branch (through ``Instruments.observe_*``) stores the
latest rows here and the gauge callbacks read them.

One ``GaugeBoard`` per MeterProvider: the SDK returns the *first* observable gauge
registered under a name and ignores the callbacks of later registrations, so every
``Instruments`` built on the same provider must share the board the first one registered.

Series that disappear (a queue drained, a branch left this lane) are reported as 0 from then
on instead of going silent, so dashboards fall to zero instead of freezing on the last
value; ``clear()`` (leadership lost) drops everything, because a follower knows nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from awa.telemetry.attributes import (
    ATTR_BRANCH,
    ATTR_JOB_STATE,
    ATTR_LANE,
    ATTR_OUTBOX_SINK,
    ATTR_QUEUE,
)

__all__ = ["GaugeBoard", "board_for"]

Attrs = tuple[tuple[str, str], ...]


class GaugeBoard:
    """Latest gauge values keyed by their attribute sets; thread-safe (the exporter
    collects from its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth: dict[Attrs, float] = {}
        self._lag: dict[Attrs, float] = {}
        self._paused: dict[Attrs, float] = {}
        self._interval: dict[str, tuple[Attrs, float]] = {}
        self._delayed: dict[str, tuple[Attrs, float]] = {}
        self._backlog: dict[Attrs, float] = {}

    # ------------------------------------------------------------------------ writers

    def set_queue_stats(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the queue snapshot with ``rows`` (``queue``, ``state``, ``count``,
        ``lag_s``: the shape ``Store.maintenance.refresh_queue_stats`` returns)."""
        depth: dict[Attrs, float] = {}
        lag: dict[Attrs, float] = {}
        for row in rows:
            queue = str(row["queue"])
            depth[((ATTR_QUEUE, queue), (ATTR_JOB_STATE, str(row["state"])))] = _number(
                row["count"]
            )
            key = ((ATTR_QUEUE, queue),)
            lag[key] = max(lag.get(key, 0.0), _number(row.get("lag_s")))
        with self._lock:
            self._depth = _zero_missing(self._depth, depth)
            self._lag = _zero_missing(self._lag, lag)

    def set_queue_paused(self, paused: Mapping[str, bool]) -> None:
        """Replace the pause snapshot: queue name → paused. A queue that leaves the
        snapshot reads 0 from then on, like a drained queue's depth."""
        fresh: dict[Attrs, float] = {
            ((ATTR_QUEUE, queue),): 1.0 if flag else 0.0 for queue, flag in paused.items()
        }
        with self._lock:
            self._paused = _zero_missing(self._paused, fresh)

    def set_branch(self, lane: str, branch: str, interval: float, delayed: bool) -> None:
        """Record a branch's interval and health; keyed by branch, so a lane-mode switch
        moves the series to the new lane instead of duplicating it."""
        attrs = ((ATTR_LANE, lane), (ATTR_BRANCH, branch))
        with self._lock:
            self._interval[branch] = (attrs, float(interval))
            self._delayed[branch] = (attrs, 1.0 if delayed else 0.0)

    def set_outbox_backlog(self, backlog: Mapping[str, int]) -> None:
        """Replace the outbox snapshot: sink name → events waiting."""
        fresh: dict[Attrs, float] = {
            ((ATTR_OUTBOX_SINK, sink),): float(n) for sink, n in backlog.items()
        }
        with self._lock:
            self._backlog = _zero_missing(self._backlog, fresh)

    def clear(self) -> None:
        """Forget every leader-computed value (this process stopped leading)."""
        with self._lock:
            self._depth, self._lag, self._backlog, self._paused = {}, {}, {}, {}
            self._interval, self._delayed = {}, {}

    # ------------------------------------------------------------------------ readers

    def queue_depth(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(v, dict(k)) for k, v in self._depth.items()]

    def queue_lag(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(v, dict(k)) for k, v in self._lag.items()]

    def queue_paused(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(v, dict(k)) for k, v in self._paused.items()]

    def branch_interval(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(v, dict(k)) for k, v in self._interval.values()]

    def branch_delayed(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(v, dict(k)) for k, v in self._delayed.values()]

    def outbox_backlog(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(v, dict(k)) for k, v in self._backlog.items()]


def _number(value: Any) -> float:
    """Counts arrive as int, lags as Decimal/float/None (no available job)."""
    if value is None:
        return 0.0
    if isinstance(value, Decimal | int | float):
        return float(value)
    raise TypeError(f"expected a number, got {value!r}")


def _zero_missing(old: dict[Attrs, float], new: dict[Attrs, float]) -> dict[Attrs, float]:
    merged = dict.fromkeys(old, 0.0)
    merged.update(new)
    return merged


_boards: weakref.WeakKeyDictionary[object, GaugeBoard] = weakref.WeakKeyDictionary()
_global_board = GaugeBoard()
_boards_lock = threading.Lock()


def board_for(provider: object | None) -> GaugeBoard:
    """The board shared by every ``Instruments`` on ``provider`` (``None``: the global
    provider, whose proxy and real object count as one)."""
    if provider is None:
        return _global_board
    with _boards_lock:
        board = _boards.get(provider)
        if board is None:
            board = _boards[provider] = GaugeBoard()
        return board
