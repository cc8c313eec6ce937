"""Per-branch overrun tracking: is a periodic maintenance branch on time or delayed?

What: a pure state machine (no I/O, no clock, no logging) fed one *sample* per finished run
of a branch: its ``duration`` (body wall-clock seconds) and its ``lateness`` (seconds between
its due time and the moment it actually started). From each sample it computes the load ratio
``r = (lateness + duration) / interval`` and moves between two health states,
``ON_TIME`` and ``DELAYED``. The leader turns the result into telemetry: the
``awa.maintenance.branch.overrun`` counter is incremented by ``Observation.overrun_increment``,
a warning is logged on each ``Transition``, and the next run is held back by
``Observation.min_rest``.

Why hysteresis: a raw "this run took longer than its interval" check flaps on every slow
sample and turns one sustained slowdown into dozens of counter increments and log lines. The
counter is meant to count *episodes* (a branch going from on time to delayed), so:

* samples are classified with a deadband: ``r >= delayed_ratio`` is *over*,
  ``r <= on_time_ratio`` is *under*, anything strictly between is *deadband*;
* ``ON_TIME`` flips to ``DELAYED`` only after ``flip_after`` (K) consecutive over samples;
  that flip is one episode (``overrun_increment == 1``, ``Transition.BECAME_DELAYED``);
* ``DELAYED`` flips back to ``ON_TIME`` only after K consecutive under samples
  (``Transition.RECOVERED``, no increment);
* a deadband sample never flips the state and resets both streaks, so a branch hovering
  around its interval neither enters nor leaves ``DELAYED``.

Why lateness counts: a branch starved by its lane (capacity taken by siblings) can have short
bodies yet start far too late; duration alone would call it healthy.

Why a cooldown instead of silencing: a delayed branch still runs, but paced so that its duty
cycle (busy / (busy + rest)) stays at or below ``duty_cycle_cap``. While ``DELAYED`` (after
the sample), ``min_rest = duration * (1 / duty_cycle_cap - 1)`` is the minimum time the
scheduler must wait after this run finished before starting the next one; since
``duration + min_rest == duration / duty_cycle_cap``, any sequence of delayed runs has a duty
cycle of at most the cap. While ``ON_TIME``, ``min_rest`` is ``0.0`` and the scheduler keeps
its normal interval.

Options (``OverrunPolicy``), with defaults:

* ``interval`` (required, seconds, finite, > 0): the branch's scheduling interval;
* ``on_time_ratio = 0.7``: at or below this load ratio a sample counts as under;
* ``delayed_ratio = 1.5``: at or above this load ratio a sample counts as over;
  ``0 < on_time_ratio < delayed_ratio``, both finite;
* ``flip_after = 3``: K, consecutive samples needed to flip either way (>= 1);
* ``duty_cycle_cap = 0.5``: the delayed-branch duty cycle bound (``0 < cap <= 1``;
  ``1.0`` means no cooldown at all).

Streak bookkeeping: the over streak is only counted while ``ON_TIME`` and the under streak
only while ``DELAYED``; each streak is reset to 0 when the state flips (and is therefore 0 in
the state where it is not counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "BranchHealth",
    "Observation",
    "OverrunPolicy",
    "OverrunTracker",
    "Transition",
]


class BranchHealth(Enum):
    """Whether a branch is keeping up with its interval (as judged with hysteresis)."""

    ON_TIME = "on_time"
    DELAYED = "delayed"


class Transition(Enum):
    """A health flip caused by one sample; the leader logs a warning on each."""

    BECAME_DELAYED = "became_delayed"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class OverrunPolicy:
    """Thresholds for one branch; see the module docstring for the meaning of each field.

    Validated eagerly so a misconfigured branch fails at start-up, not on its first sample.
    """

    interval: float
    on_time_ratio: float = 0.7
    delayed_ratio: float = 1.5
    flip_after: int = 3
    duty_cycle_cap: float = 0.5

    def __post_init__(self) -> None:
        # Comparisons are written so that NaN fails them (NaN compares false to everything).
        if not (math.isfinite(self.interval) and self.interval > 0):
            raise ValueError(
                f"OverrunPolicy.interval must be finite and > 0, got {self.interval!r}"
            )
        if not (math.isfinite(self.on_time_ratio) and self.on_time_ratio > 0):
            raise ValueError(
                f"OverrunPolicy.on_time_ratio must be finite and > 0, got {self.on_time_ratio!r}"
            )
        if not (math.isfinite(self.delayed_ratio) and self.delayed_ratio > self.on_time_ratio):
            raise ValueError(
                "OverrunPolicy.delayed_ratio must be finite and > on_time_ratio "
                f"({self.on_time_ratio!r}), got {self.delayed_ratio!r}"
            )
        if (
            isinstance(self.flip_after, bool)
            or not isinstance(self.flip_after, int)
            or self.flip_after < 1
        ):
            raise ValueError(
                f"OverrunPolicy.flip_after must be an int >= 1, got {self.flip_after!r}"
            )
        if not (0 < self.duty_cycle_cap <= 1):
            raise ValueError(
                f"OverrunPolicy.duty_cycle_cap must be in (0, 1], got {self.duty_cycle_cap!r}"
            )


@dataclass(frozen=True)
class Observation:
    """What one sample did to the tracker, and what the scheduler should do next.

    ``health`` is the state *after* this sample. ``overrun_increment`` is 1 exactly when
    ``transition`` is ``BECAME_DELAYED`` (add it to the overrun counter unconditionally).
    ``min_rest`` is the minimum wait, in seconds, after this run finished before the next run.
    """

    ratio: float
    health: BranchHealth
    transition: Transition | None
    overrun_increment: int
    min_rest: float


class OverrunTracker:
    """Hysteresis state machine for one branch. Not thread-safe; one tracker per branch."""

    def __init__(self, policy: OverrunPolicy) -> None:
        self._policy = policy
        self._health = BranchHealth.ON_TIME
        self._episodes = 0
        self._over_streak = 0
        self._under_streak = 0
        # Precomputed so every delayed observation uses the same factor.
        self._rest_factor = 1.0 / policy.duty_cycle_cap - 1.0

    @property
    def policy(self) -> OverrunPolicy:
        """The thresholds this tracker was built with."""
        return self._policy

    @property
    def health(self) -> BranchHealth:
        """Current health (after the most recent sample)."""
        return self._health

    @property
    def episodes(self) -> int:
        """Total overrun increments so far: one per on-time → delayed episode."""
        return self._episodes

    @property
    def over_streak(self) -> int:
        """Consecutive over samples seen while on time (always 0 while delayed)."""
        return self._over_streak

    @property
    def under_streak(self) -> int:
        """Consecutive under samples seen while delayed (always 0 while on time)."""
        return self._under_streak

    def observe(self, duration: float, lateness: float) -> Observation:
        """Feed one finished run and return its classification and the resulting state.

        Raises ``ValueError`` for a negative, NaN or infinite ``duration`` or ``lateness``:
        such a sample is a caller bug (a broken clock), and letting it through would poison
        the streaks or produce a NaN/infinite ``min_rest``. The tracker is unchanged then.
        """
        _check_sample("duration", duration)
        _check_sample("lateness", lateness)
        policy = self._policy
        ratio = (lateness + duration) / policy.interval
        transition: Transition | None = None
        increment = 0

        if ratio >= policy.delayed_ratio:
            if self._health is BranchHealth.ON_TIME:
                self._over_streak += 1
                if self._over_streak >= policy.flip_after:
                    self._health = BranchHealth.DELAYED
                    self._over_streak = 0
                    transition = Transition.BECAME_DELAYED
                    increment = 1
                    self._episodes += 1
            else:
                self._under_streak = 0
        elif ratio <= policy.on_time_ratio:
            if self._health is BranchHealth.DELAYED:
                self._under_streak += 1
                if self._under_streak >= policy.flip_after:
                    self._health = BranchHealth.ON_TIME
                    self._under_streak = 0
                    transition = Transition.RECOVERED
            else:
                self._over_streak = 0
        else:
            # Deadband: never flips, and breaks any streak in progress.
            self._over_streak = 0
            self._under_streak = 0

        min_rest = duration * self._rest_factor if self._health is BranchHealth.DELAYED else 0.0
        return Observation(
            ratio=ratio,
            health=self._health,
            transition=transition,
            overrun_increment=increment,
            min_rest=min_rest,
        )


def _check_sample(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
