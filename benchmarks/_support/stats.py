"""Small statistics helpers shared by the scenario scripts."""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger("awa.bench")


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
