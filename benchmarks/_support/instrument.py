"""Client-side timing of a store's methods during a benchmark (``throughput.py``'s
``store_calls``): calls, rows per call, mean/p50/p99 round trip. The time includes waiting
for a busy event loop, so it is not server time (``pg_stats`` gives that)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from _support.stats import percentiles

__all__ = ["CallStats", "instrumented"]


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


@contextmanager
def instrumented(
    cls: type,
    names: Sequence[str],
    on_call: Callable[[str, float, float, Any], None] | None = None,
) -> Iterator[dict[str, CallStats]]:
    """Time every call of ``cls.<name>`` while inside, on every instance: the runtime opens
    its own store (``awa.runtime.wiring``), so wrapping the client's instance would time
    nothing. ``on_call(name, sent, returned, result)`` sees each call too. The class is
    restored on exit."""
    stats: dict[str, CallStats] = {}
    originals: dict[str, Callable[..., Awaitable[Any]]] = {}
    for name in names:
        original = originals[name] = getattr(cls, name)
        entry = stats[name] = CallStats()

        def make(
            fn: Callable[..., Awaitable[Any]], s: CallStats, label: str
        ) -> Callable[..., Awaitable[Any]]:
            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                result = await fn(*args, **kwargs)
                t1 = time.perf_counter()
                s.calls += 1
                s.seconds += t1 - t0
                s.durations.append(t1 - t0)
                s.rows += len(result) if isinstance(result, list | set) else 1
                if on_call is not None:
                    on_call(label, t0, t1, result)
                return result

            return timed

        setattr(cls, name, make(original, entry, name))
    try:
        yield stats
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)
