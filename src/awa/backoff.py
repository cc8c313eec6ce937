"""Retry backoff: exponential in the attempt number, capped, with jitter.

Why jitter: jobs that failed together (a dependency went down) would otherwise retry
together and fail together again. Why a cap: attempt 25 must not wait for months.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DEFAULT_BACKOFF", "Backoff"]


@dataclass(frozen=True)
class Backoff:
    """``delay(attempt)`` = min(cap, base * factor**(attempt-1)) scaled by ±``jitter``.

    Defaults: 1 s after the first failure, doubling, capped at one hour, ±10 % jitter.
    The result never exceeds ``cap`` and never falls below ``base * (1 - jitter)``.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"Backoff.base must be > 0, got {self.base!r}")
        if not self.factor >= 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor!r}")
        if not self.cap >= self.base:
            raise ValueError(f"Backoff.cap must be >= base, got {self.cap!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"Backoff.jitter must be in [0, 1), got {self.jitter!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retrying after failed attempt number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        exponent = min(attempt - 1, 1024)  # factor**1024 overflows nothing once capped below
        try:
            raw = self.base * self.factor**exponent
        except OverflowError:
            raw = self.cap
        nominal = min(self.cap, raw)
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return min(self.cap, nominal * (1.0 + spread))


DEFAULT_BACKOFF = Backoff()
