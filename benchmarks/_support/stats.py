"""Statistics the scenario scripts share: percentiles, millisecond summaries, trends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ms_summary", "percentiles", "slope_per_hour"]


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[str, float]:
    """Linear-interpolated percentiles (like numpy's default); ``{}`` for no data."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, float] = {}
    last = len(ordered) - 1
    for p in points:
        rank = p / 100 * last
        low = int(rank)
        high = min(low + 1, last)
        value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
        out[f"p{p:g}"] = value
    return out


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t seconds, value) in value units per hour."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return None
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    return sxy / sxx * 3600.0


def ms_summary(
    values_s: Sequence[float], *, with_count: bool = False, with_min: bool = False
) -> dict[str, Any]:
    """p50/p90/p99/max of durations given in seconds, as milliseconds (None for no data);
    ``n`` first with ``with_count``, ``min_ms`` last with ``with_min``."""
    pct = percentiles(values_s, (50, 90, 99))
    out: dict[str, Any] = {"n": len(values_s)} if with_count else {}
    out["p50_ms"] = round(pct["p50"] * 1000, 2) if pct else None
    out["p90_ms"] = round(pct["p90"] * 1000, 2) if pct else None
    out["p99_ms"] = round(pct["p99"] * 1000, 2) if pct else None
    out["max_ms"] = round(max(values_s) * 1000, 2) if values_s else None
    if with_min:
        out["min_ms"] = round(min(values_s) * 1000, 2) if values_s else None
    return out
