"""``JobFilter``: which jobs an operator means, shared by the jobs list and the bulk actions.

One type for both on purpose: the console shows the list for a filter, counts what a bulk
action would touch under that same filter, and the action then walks exactly that filter,
so what the operator saw and what is acted on cannot drift apart through two spellings.

The time range is on ``finalized_at`` (when a job reached completed, failed or cancelled):
"what failed between 02:00 and 02:15" is the operator's question, and the history's
``(state, finalized_at)`` index answers it. Live jobs have no ``finalized_at`` and never
match a time range (ADR 032).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from awa.errors import ValidationError
from awa.model import JobState, parse_state

__all__ = ["ACTIONABLE", "BULK_ACTIONS", "JobFilter", "parse_instant"]

#: The states each bulk action applies to: the same rules as the single actions.
ACTIONABLE: dict[str, tuple[JobState, ...]] = {
    "retry": (
        JobState.SCHEDULED,
        JobState.RETRYABLE,
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
    ),
    "cancel": (
        JobState.SCHEDULED,
        JobState.AVAILABLE,
        JobState.RETRYABLE,
        JobState.WAITING_EXTERNAL,
        JobState.RUNNING,
    ),
    "discard": tuple(s for s in JobState if s is not JobState.RUNNING),
}
BULK_ACTIONS = tuple(ACTIONABLE)


def parse_instant(field: str, value: str | datetime | None) -> datetime | None:
    """An ISO 8601 instant with its offset (``2026-12-06T02:00:00Z``); a naive time is
    refused, since the server and the operator may not share a time zone."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(field, value, "expected an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise ValidationError(field, value, "expected a time zone (e.g. Z or +01:00)")
    return value


def _text(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > 200:
        raise ValidationError(field, value, "expected at most 200 characters")
    return value or None


@dataclass(frozen=True)
class JobFilter:
    """Every field given must match (``None`` = any).

    - ``state``, ``queue``, ``kind``: equality;
    - ``tag``: the job's ``tags`` contain it;
    - ``since`` (inclusive) / ``until`` (exclusive): ``finalized_at`` in that range — only
      finished jobs match a time range.
    """

    state: JobState | None = None
    queue: str | None = None
    kind: str | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(
        cls,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        kind: str | None = None,
        tag: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> JobFilter:
        """From user input (CLI flags, query parameters): blanks mean "any"; a bad state
        or instant, or ``since`` not before ``until``, is a ``ValidationError``."""
        if isinstance(state, str):
            state = parse_state(state.strip()) if state.strip() else None
        found = cls(
            state=state,
            queue=_text("queue", queue),
            kind=_text("kind", kind),
            tag=_text("tag", tag),
            since=parse_instant("since", since),
            until=parse_instant("until", until),
        )
        if found.since and found.until and found.since >= found.until:
            raise ValidationError("until", found.until, "expected a time after since")
        return found

    def sql_args(self) -> tuple[Any, ...]:
        """The filter's six query parameters, in the order ``sql/admin*.sql`` take them."""
        state = self.state.value if self.state else None
        return (state, self.queue, self.kind, self.tag, self.since, self.until)

    def as_dict(self) -> dict[str, Any]:
        """The fields given, as text (what the console echoes back and shows)."""
        out: dict[str, Any] = {
            "state": self.state.value if self.state else None,
            "queue": self.queue,
            "kind": self.kind,
            "tag": self.tag,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in out.items() if v is not None}

    def describe(self) -> str:
        """``state=failed queue=mail`` (``all jobs`` when nothing is given)."""
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items()) or "all jobs"

    def states_for(self, action: str) -> list[str]:
        """The states ``action`` may touch under this filter (empty: none can match)."""
        if action not in ACTIONABLE:
            raise ValidationError("action", action, f"expected one of {', '.join(BULK_ACTIONS)}")
        allowed = ACTIONABLE[action]
        if self.state is not None:
            allowed = tuple(s for s in allowed if s is self.state)
        return [s.value for s in allowed]
