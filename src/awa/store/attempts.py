"""What a worker reports about its attempts, shared by the parts that write outcomes
(``jobs``, ``callbacks``, ``recovery``).

Progress values passed to the heartbeat and to the writes that end an attempt follow one
rule: ``None`` keeps the stored progress, ``CLEAR_PROGRESS`` clears it, anything else (a JSON
value) replaces it.

Leases: an attempt is fenced by its job's ``run_lease``, which the claim draws as
``(generation + 1) << 32 | 32 random bits`` (ADR 040). Leases are compared for equality
only; where an order between two attempts of one job is needed (audits, tests), compare
``lease_generation``: the random half orders nothing, and two claims of the same
generation exist only when a server crash lost the first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from awa.db.connect import RawJson
from awa.model import JobState

__all__ = [
    "CLEAR_PROGRESS",
    "LEASE_GENERATION_SHIFT",
    "FinishedAttempt",
    "ReportedAttempt",
    "Rescheduled",
    "lease_generation",
    "progress_param",
]

#: A lease's generation sits above its low 32 random bits (``claim_batch``).
LEASE_GENERATION_SHIFT: Final = 32


def lease_generation(run_lease: int) -> int:
    """How many durable claims preceded this lease's (plus one): the order between leases
    of one job, where any is needed; a lease written before ADR 040 has generation 0."""
    return run_lease >> LEASE_GENERATION_SHIFT


class _ClearProgress:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CLEAR_PROGRESS"


#: A progress value meaning "clear the stored progress" (``None`` means "keep it").
CLEAR_PROGRESS: Final = _ClearProgress()

# JSON null: the SQL turns it into NULL, while an SQL NULL element keeps the stored value.
_JSON_NULL = RawJson("null")


def progress_param(values: Sequence[Any]) -> list[Any] | None:
    """The jsonb[] argument for a batch's progress: None (keep all) when nothing changed."""
    if all(v is None for v in values):
        return None
    return [_JSON_NULL if v is CLEAR_PROGRESS else v for v in values]


@dataclass(frozen=True)
class FinishedAttempt:
    """A running attempt to move to history as failed or cancelled."""

    job_id: int
    run_lease: int
    state: JobState
    error: dict[str, Any] | None
    progress: Any = None  # None keeps the stored progress; CLEAR_PROGRESS clears it


@dataclass(frozen=True)
class Rescheduled:
    """A running attempt to put back in line (retry or snooze)."""

    job_id: int
    run_lease: int
    state: JobState  # RETRYABLE or SCHEDULED
    run_at: datetime
    error: dict[str, Any] | None
    give_back_attempt: bool
    progress: Any = None  # None keeps the stored progress; CLEAR_PROGRESS clears it


class ReportedAttempt(Protocol):
    """What ``Jobs.cancel_the_rest`` needs of a reported outcome (finish, reschedule,
    callback resolution)."""

    @property
    def job_id(self) -> int: ...
    @property
    def run_lease(self) -> int: ...
    @property
    def progress(self) -> Any: ...
