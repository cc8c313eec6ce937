"""Client-side timing of a store's methods during a benchmark (``throughput.py``'s
``store_calls``): calls, rows per call, mean/p50/p99 round trip. The time includes waiting
for a busy event loop, so it is not server time (``pg_stats`` gives that)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _support.stats import percentiles

__all__ = ["CallStats", "instrument"]


@dataclass
class CallStats:
    """Round trips of one store method as seen by the client: count, rows, wall time."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0
    durations: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        if not self.calls:
            return {"calls": 0}
        pct = percentiles(self.durations, (50, 99))
        return {
            "calls": self.calls,
            "rows_per_call": round(self.rows / self.calls, 1),
            "mean_ms": round(self.seconds / self.calls * 1000, 3),
            "p50_ms": round(pct["p50"] * 1000, 3),
            "p99_ms": round(pct["p99"] * 1000, 3),
            "total_s": round(self.seconds, 3),
        }


def instrument(store: Any, names: Sequence[str]) -> dict[str, CallStats]:
    """Wrap ``store.<name>`` on this instance to time each call (the class is untouched)."""
    stats: dict[str, CallStats] = {}
    for name in names:
        original: Callable[..., Awaitable[Any]] = getattr(store, name)
        entry = stats[name] = CallStats()

        def make(fn: Callable[..., Awaitable[Any]], s: CallStats) -> Callable[..., Awaitable[Any]]:
            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                result = await fn(*args, **kwargs)
                dt = time.perf_counter() - t0
                s.calls += 1
                s.seconds += dt
                s.durations.append(dt)
                s.rows += len(result) if isinstance(result, list | set) else 1
                return result

            return timed

        setattr(store, name, make(original, entry))
    return stats
