"""The misfire and overlap decision, as a pure function (property-tested with hypothesis).

Input: the fire instants a schedule has due since its last evaluation mark, oldest first,
the current time, the policies, and whether the previous fire's job is still pending or
running. Output: one decision per instant it covers (fire, missed, or not enqueued because
of overlap) and the new mark: every due instant at or before it is decided, none after it.
The evaluator writes the mark with a compare-and-set in the same transaction that enqueues
the fires, which is what makes a fire happen at most once across leader failovers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from awa.cron.schedule import Misfire, Overlap

__all__ = ["Action", "Decision", "Plan", "PreviousJob", "plan_fires"]


class PreviousJob(StrEnum):
    """State of the job enqueued by the schedule's previous fire."""

    NONE = "none"  # never fired, or that job has finished
    PENDING = "pending"  # scheduled / available / retryable: not started yet
    RUNNING = "running"  # running or waiting on a callback


class Action(StrEnum):
    FIRE = "fire"
    MISSED = "missed"
    OVERLAP = "overlap"


@dataclass(frozen=True)
class Decision:
    instant: datetime
    action: Action
    late_s: float


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    evaluated_through: datetime

    def instants(self, action: Action) -> list[datetime]:
        return [d.instant for d in self.decisions if d.action is action]

    @property
    def fires(self) -> list[datetime]:
        return self.instants(Action.FIRE)

    @property
    def missed(self) -> list[datetime]:
        return self.instants(Action.MISSED)


def plan_fires(
    due: Sequence[datetime],
    *,
    now: datetime,
    misfire: Misfire,
    overlap: Overlap,
    window_s: float,
    on_time_s: float,
    max_catchup: int,
    previous: PreviousJob,
) -> Plan:
    """Decide what to do with each due instant (see the module docstring).

    ``on_time_s``: an instant at most this late is a normal trigger under every policy.
    ``window_s``: how late a missed instant may be and still be caught up.
    """
    # An instant after ``now`` is not due yet (the caller's clock and ours may disagree by
    # a little): it gets no decision, and must not hide the latest due instant from
    # catchup_latest.
    ordered = sorted({t for t in due if t <= now})
    if not ordered:
        return Plan((), now)
    window = timedelta(seconds=max(window_s, on_time_s))
    on_time = timedelta(seconds=on_time_s)
    candidates: list[datetime]
    if misfire is Misfire.SKIP:
        candidates = [t for t in ordered if now - t <= on_time]
    elif misfire is Misfire.CATCHUP_LATEST:
        # On-time instants are normal triggers; only when there is none does the most
        # recent late instant within the window fire (once), bringing the schedule current.
        punctual = [t for t in ordered if now - t <= on_time]
        recent = [t for t in ordered if now - t <= window]
        candidates = punctual or recent[-1:]
    else:
        candidates = [t for t in ordered if now - t <= window]
    through = now
    if misfire is Misfire.CATCHUP_ALL and len(candidates) > max_catchup:
        # Bounded per pass: decide up to the last instant we fire; the rest wait a pass.
        candidates = candidates[:max_catchup]
        through = candidates[-1]
    chosen = set(candidates)
    state = previous
    decisions: list[Decision] = []
    for instant in ordered:
        if instant > through:
            break
        late = max(0.0, (now - instant).total_seconds())
        if instant not in chosen:
            decisions.append(Decision(instant, Action.MISSED, late))
            continue
        blocked = (overlap is Overlap.SKIP and state is not PreviousJob.NONE) or (
            overlap is Overlap.BUFFER_ONE and state is PreviousJob.PENDING
        )
        if blocked:
            decisions.append(Decision(instant, Action.OVERLAP, late))
        else:
            decisions.append(Decision(instant, Action.FIRE, late))
            state = PreviousJob.PENDING
    return Plan(tuple(decisions), through)
