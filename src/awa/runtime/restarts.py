"""When a worker process that died is started again, and when to stop trying (ADR 028).

A pure policy, no I/O and no clock of its own (the caller passes ``now``), so the
supervisor's decisions are tested without waiting for real crashes. Restarts are counted
per process slot in a sliding window: a fleet-wide event (every child killed at once by an
OOM sweep) restarts each slot once and is not a crash loop, while one slot dying over and
over is, whatever the others do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["RestartPolicy", "RestartTracker"]


@dataclass(frozen=True)
class RestartPolicy:
    """``max_restarts`` restarts of one slot within ``window`` seconds are allowed; one
    more is a crash loop. The delay before a restart doubles from ``first_delay`` with each
    restart of that slot still in the window, up to ``max_delay``: a child that dies at
    start (a bad ``--app``, the database refusing connections) is not restarted in a tight
    loop that pins a core, and one that died once after hours comes back at once."""

    max_restarts: int = 5
    window: float = 60.0
    first_delay: float = 0.25
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.window <= 0:
            raise ValueError("max_restarts must be >= 0 and window > 0")
        if self.first_delay < 0 or self.max_delay < self.first_delay:
            raise ValueError("need 0 <= first_delay <= max_delay")


@dataclass
class RestartTracker:
    """The restarts of every slot under one ``RestartPolicy``."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    _times: dict[int, deque[float]] = field(default_factory=dict)

    def restart_delay(self, slot: int, now: float) -> float | None:
        """Record that ``slot`` died at ``now``: the seconds to wait before starting it
        again, or ``None`` when this restart would exceed the policy (a crash loop)."""
        times = self._times.setdefault(slot, deque())
        while times and now - times[0] >= self.policy.window:
            times.popleft()
        if len(times) >= self.policy.max_restarts:
            return None
        times.append(now)
        delay = self.policy.first_delay * 2 ** (len(times) - 1)
        return float(min(self.policy.max_delay, delay))

    def recent(self, slot: int) -> int:
        """Restarts of ``slot`` currently counted in the window."""
        return len(self._times.get(slot, ()))
