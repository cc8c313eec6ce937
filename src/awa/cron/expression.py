"""Cron expressions evaluated in an IANA timezone, with the DST rule made explicit.

Parsing and iteration are croniter's (a well-kept library; we do not write a cron parser).
What this module adds is the contract the evaluator needs: instants are returned as aware
UTC datetimes, strictly increasing, in a half-open window ``(after, until]``.

Five fields (minute hour day month weekday) or six with a leading *seconds* field.

DST (documented in ADR 005):

- spring forward: a wall-clock time that does not exist that day fires at the first
  existing instant after it (02:30 in a skipped hour fires at 03:00);
- fall back: an expression with a fixed hour fires once, at the first occurrence of the
  repeated wall-clock time; an expression whose hour field is ``*`` (or a step such as
  ``*/2``) fires at both occurrences, because it is about elapsed time, not a time of day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from awa.errors import ValidationError

__all__ = ["CronExpression"]


class CronExpression:
    """A validated expression bound to a timezone."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise ValidationError("expression", expression, "expected a cron expression")
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ValidationError(
                "expression", expression, "expected 5 fields, or 6 with leading seconds"
            )
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValidationError("timezone", timezone, "expected an IANA timezone name") from exc
        self.expression = " ".join(fields)
        self.timezone = timezone
        self.has_seconds = len(fields) == 6
        hour = fields[2] if self.has_seconds else fields[1]
        self.fixed_hour = not (hour == "*" or hour.startswith("*/"))
        try:
            croniter(self.expression, datetime.now(self.zone), second_at_beginning=self.has_seconds)
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValidationError(
                "expression", expression, f"invalid cron expression: {exc}"
            ) from exc

    def _iterate(self, after: datetime) -> Iterator[datetime]:
        start = after.astimezone(self.zone)
        it = croniter(self.expression, start, second_at_beginning=self.has_seconds)
        seen_wall: datetime | None = None
        while True:
            fire: datetime = it.get_next(datetime)
            if self.fixed_hour and fire.fold == 1:
                wall = fire.replace(fold=0, tzinfo=None)
                # The repeated hour of a fall-back day: fire only the first occurrence.
                if seen_wall == wall or _is_repeat(fire):
                    continue
            seen_wall = fire.replace(fold=0, tzinfo=None)
            yield fire.astimezone(UTC)

    def fires_between(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Up to ``limit`` fire instants in ``(after, until]``, oldest first, in UTC."""
        _check_aware("after", after)
        _check_aware("until", until)
        out: list[datetime] = []
        if until <= after or limit <= 0:
            return out
        for fire in self._iterate(after):
            if fire > until:
                break
            if fire > after:
                out.append(fire)
                if len(out) >= limit:
                    break
        return out

    def next_after(self, after: datetime) -> datetime:
        """The first fire instant strictly after ``after``, in UTC."""
        _check_aware("after", after)
        for fire in self._iterate(after):
            if fire > after:
                return fire
        raise AssertionError("unreachable: croniter iterates forever")

    def interval_at(self, instant: datetime) -> timedelta:
        """The gap from the first fire after ``instant`` to the one after it: the schedule's
        expected period around ``instant`` (used for missed-fire detection)."""
        first = self.next_after(instant)
        return self.next_after(first) - first

    def __repr__(self) -> str:
        return f"CronExpression({self.expression!r}, {self.timezone!r})"


def _is_repeat(fire: datetime) -> bool:
    """True for the second occurrence (``fold=1``) of an ambiguous wall-clock time."""
    first = fire.replace(fold=0)
    return first.utcoffset() != fire.utcoffset()


def _check_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(name, value, "expected an aware datetime")
