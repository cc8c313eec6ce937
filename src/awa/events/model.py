"""What an event is: an immutable record of one lifecycle change, read from the outbox.

Events are written by the statement that made the change (a failed job's move to history,
a rescue, a cron fire, a missed-fire alert) into ``awa.events``, so an event exists if and
only if its change committed. ``id`` is the outbox row's id: unique and stable across
retries, which is why sinks receive it as the idempotency key (delivery is at least once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from awa.errors import ValidationError

__all__ = ["EVENT_KINDS", "Event", "EventKind", "check_kinds"]


class EventKind(StrEnum):
    """The lifecycle events awa writes (``Event.kind``); the ``data`` of each:

    - ``job.failed``: a job ended ``failed`` (attempts exhausted, or rescued with none left):
      ``job_id``, ``kind``, ``queue``, ``attempt``, ``max_attempts``, ``tags``, ``error``
      (the last error record), ``rescued`` (true when a rescue failed it).
    - ``job.rescued``: maintenance took an attempt back from a dead, hung or timed-out
      holder: ``job_id``, ``kind``, ``queue``, ``attempt``, ``max_attempts``, ``reason``,
      ``claimed_by``, ``outcome`` (``retried`` or ``failed``), ``run_at`` when retried.
    - ``cron.fired``: a schedule enqueued a fire: ``schedule``, ``scheduled_at``,
      ``job_id``, ``kind``, ``queue``.
    - ``cron.missed``: missed-fire detection found no successful run for an instant:
      ``schedule``, ``scheduled_at``, ``last_success_at``, ``last_fire_at``, ``misfire``,
      ``miss_tolerance_s``.
    """

    JOB_FAILED = "job.failed"
    JOB_RESCUED = "job.rescued"
    CRON_FIRED = "cron.fired"
    CRON_MISSED = "cron.missed"


EVENT_KINDS = frozenset(k.value for k in EventKind)


def check_kinds(field_name: str, kinds: Iterable[str] | None) -> frozenset[str] | None:
    """A sink's subscription: ``None`` (every kind) or a non-empty set of known kinds.

    Unknown kinds are rejected so a typo does not silently subscribe to nothing."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        raise ValidationError(field_name, kinds, "expected a list of event kinds, not a string")
    chosen = frozenset(str(k) for k in kinds)
    if not chosen:
        raise ValidationError(field_name, kinds, "expected at least one kind (or None for all)")
    unknown = chosen - EVENT_KINDS
    if unknown:
        raise ValidationError(
            field_name, sorted(unknown), f"unknown event kinds; known: {sorted(EVENT_KINDS)}"
        )
    return chosen


@dataclass(frozen=True)
class Event:
    """One outbox row as a sink receives it."""

    id: int
    kind: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Stable across redeliveries: receivers deduplicate on it."""
        return f"awa-event-{self.id}"

    def to_json(self) -> dict[str, Any]:
        """The wire form (what a webhook receives as its body)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.data,
        }

    def body(self) -> bytes:
        """``to_json`` as compact UTF-8 JSON (the exact bytes a webhook signature covers)."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode()
