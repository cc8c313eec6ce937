"""Where one pickup's time goes: per-stage timestamps inside the benchmark process.

``throughput.py``'s ``pickup_latency`` already stamps the insert, the claim round trip and
the handler start. To find the *tail* (issue 16) those stages are too coarse: "insert
returned → claim sent" hides both the NOTIFY delivery and the dispatcher's reaction, and a
garbage-collection pause anywhere shows up as whichever stage it happened to land in.

:class:`PickupTrace` adds, without touching ``src/``:

- the moment the LISTEN connection delivered each ``awa_jobs`` notification (by wrapping
  ``Wakeups.notify`` on the class before the runtime starts, so the listener's bound
  method is the wrapped one);
- every cyclic-GC pause (``gc.callbacks``), so a slow pickup can be matched with the pauses
  that overlapped it.

Stages of one job, each in ms: ``insert`` (t0 → insert returned), ``notify`` (insert
returned → notification delivered to this process; negative when it arrives before the
pool has finished releasing the producer's connection), ``dispatch`` (notification →
claim sent: the event-loop hop and the dispatcher's wake), ``claim`` (claim sent →
returned), ``start`` (claim returned → handler running).
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from _support.stats import percentiles

__all__ = ["PickupTrace", "latency_stages"]

STAGES = (
    ("insert", "t0 → insert() returned (statement + commit + pool release)"),
    ("notify", "insert() returned → NOTIFY delivered to the listener callback"),
    ("dispatch", "NOTIFY delivered → claim sent (loop hop + dispatcher wake)"),
    ("claim", "claim sent → claim returned (statement + commit + pool release + decode)"),
    ("start", "claim returned → handler started (task spawn)"),
)
#: A pickup slower than this counts as the tail whose stages are averaged separately.
SLOW_S = 0.005


@dataclass
class PickupTrace:
    """Notification and GC timestamps (``perf_counter``) collected during one run."""

    notified: list[float] = field(default_factory=list)
    gc_pauses: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, gen
    _gc_start: float = 0.0

    @contextmanager
    def installed(self) -> Iterator[PickupTrace]:
        """Record while inside; the class patch is undone on exit."""
        from awa.worker.wakeups import Wakeups

        original: Callable[[Wakeups, str], None] = Wakeups.notify
        notified = self.notified

        def notify(wakeups: Wakeups, queue: str) -> None:
            notified.append(time.perf_counter())
            original(wakeups, queue)

        Wakeups.notify = notify  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        try:
            yield self
        finally:
            Wakeups.notify = original  # type: ignore[method-assign]
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        else:
            self.gc_pauses.append((self._gc_start, now, int(info.get("generation", -1))))

    def first_notify_after(self, t: float) -> float | None:
        i = bisect.bisect_left(self.notified, t)
        return self.notified[i] if i < len(self.notified) else None

    def gc_within(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [p for p in self.gc_pauses if p[1] > start and p[0] < end]

    def gc_summary(self) -> dict[str, Any]:
        ms = [(e - s) * 1000 for s, e, _ in self.gc_pauses]
        by_gen: dict[str, int] = {}
        for _, _, gen in self.gc_pauses:
            by_gen[str(gen)] = by_gen.get(str(gen), 0) + 1
        return {
            "pauses": len(ms),
            "by_generation": by_gen,
            "total_ms": round(sum(ms), 3),
            "max_ms": round(max(ms), 3) if ms else None,
        }


def latency_stages(
    inserted: list[tuple[int, float, float]],
    claims: dict[int, tuple[float, float]],
    started: dict[int, float],
    trace: PickupTrace | None = None,
) -> dict[str, Any]:
    """p50/p99/max per stage in ms, the mean split of the jobs slower than ``SLOW_S``, and
    (with a trace) how many of those slow jobs overlapped a GC pause."""
    per_stage: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    slow: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    slow_jobs = slow_with_gc = 0
    for job_id, t0, t_ins in inserted:
        if job_id not in claims or job_id not in started:
            continue
        c1, c2 = claims[job_id]
        parts = {"insert": t_ins - t0, "claim": c2 - c1, "start": started[job_id] - c2}
        heard = trace.first_notify_after(t0) if trace is not None else None
        if heard is not None and heard <= c1:
            parts["notify"] = heard - t_ins
            parts["dispatch"] = c1 - heard
        is_slow = started[job_id] - t0 > SLOW_S
        if is_slow:
            slow_jobs += 1
            if trace is not None and trace.gc_within(t0, started[job_id]):
                slow_with_gc += 1
        for name, value in parts.items():
            per_stage[name].append(value * 1000)
            if is_slow:
                slow[name].append(value * 1000)
    out: dict[str, Any] = {}
    for name, meaning in STAGES:
        values = per_stage[name]
        if not values:
            continue
        pct = percentiles(values, (50, 99))
        out[name] = {
            "meaning": meaning,
            "p50_ms": round(pct["p50"], 3),
            "p99_ms": round(pct["p99"], 3),
            "max_ms": round(max(values), 3),
            "mean_ms_in_slow_jobs": round(sum(slow[name]) / len(slow[name]), 3)
            if slow[name]
            else None,
        }
    out["slow_jobs"] = slow_jobs
    if trace is not None:
        out["slow_jobs_overlapping_gc"] = slow_with_gc
        out["gc"] = trace.gc_summary()
    return out
