"""Cron expressions evaluated in an IANA timezone, with the DST rule made explicit.

Parsing and wall-clock matching are croniter's (a well-kept library; we do not write a
cron parser). What this module adds is the contract the evaluator needs: instants are
returned as aware UTC datetimes, strictly increasing, in a half-open window ``(after,
until]``, and evaluating a window in two pieces gives the same instants as in one.

Five fields (minute hour day month weekday) or six with a leading *seconds* field.

DST (documented in ADR 005):

- spring forward: a wall-clock time that does not exist that day fires at the first
  existing instant after it (02:30 in a skipped hour fires at 03:00); several skipped wall
  times collapse into that one instant;
- fall back: an expression with a fixed hour fires once, at the first occurrence of the
  repeated wall-clock time; an expression whose hour field is ``*`` (or a step such as
  ``*/2``) fires at both occurrences, because it is about elapsed time, not a time of day.

How: croniter iterates *naive* local wall-clock times (where it has no DST to get wrong),
and each matching wall time is mapped to UTC by the rule above, explicitly, with
``zoneinfo``'s ``fold``. A second occurrence in a repeated hour lands after later first
occurrences, so the mapped instants go through a small heap to come out in UTC order;
iteration stays lazy (``next_after`` costs a few wall times, not an hour of them).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

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
        except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
            raise ValidationError("timezone", timezone, "expected an IANA timezone name") from exc
        self.expression = " ".join(fields)
        self.timezone = timezone
        self.has_seconds = len(fields) == 6
        hour = fields[2] if self.has_seconds else fields[1]
        self.fixed_hour = not (hour == "*" or hour.startswith("*/"))
        # The last spring-forward instant found: every wall time of a skipped hour needs it,
        # and a per-second schedule has 3,600 of them.
        self._gap_end: datetime | None = None
        try:
            croniter(self.expression, datetime.now(self.zone), second_at_beginning=self.has_seconds)
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValidationError(
                "expression", expression, f"invalid cron expression: {exc}"
            ) from exc
        try:
            # Well-formed but impossible ("0 0 30 2 *"): croniter only finds out when asked
            # for a fire, which would be in the leader, at evaluation time.
            self.next_after(datetime.now(UTC))
        except CroniterBadDateError as exc:
            raise ValidationError("expression", expression, "this expression never fires") from exc

    def _iterate(self, after: datetime) -> Iterator[datetime]:
        """Fire instants strictly after ``after`` (UTC), in UTC, increasing, forever."""
        local = after.astimezone(self.zone)
        wall = local.replace(tzinfo=None, fold=0)
        streams = [self._walk(wall)]
        if not self.fixed_hour and local.fold == 0 and _instant(wall, self.zone, 1) != after:
            # ``after`` is a first occurrence in a repeated hour: the second occurrences of
            # the wall times since that hour began are still ahead of it.
            shift = _offset(local.replace(fold=0)) - _offset(local.replace(fold=1))
            whole = after.astimezone(UTC).replace(microsecond=0)
            change = _offset_change(self.zone, whole, whole + shift)
            begin = change.astimezone(self.zone).replace(tzinfo=None, fold=0)
            streams.append(self._second_occurrences(begin - timedelta(seconds=1), wall))
        last: datetime | None = None
        for fire in heapq.merge(*streams):
            if fire > after and fire != last:
                last = fire
                yield fire

    def _walk(self, start: datetime) -> Iterator[datetime]:
        """The instants of the wall times after naive ``start``, in UTC order (repeats
        possible when skipped wall times collapse into the end of the gap)."""
        walls = croniter(self.expression, start, second_at_beginning=self.has_seconds)
        pending: list[datetime] = []
        while True:
            instants = self._instants(walls.get_next(datetime))
            if not instants:
                continue  # an elapsed-time wall time inside a skipped hour: no fire
            # Instants of later wall times are never before ``instants[0]``: everything
            # pending up to it is final.
            while pending and pending[0] <= instants[0]:
                yield heapq.heappop(pending)
            for fire in instants:
                heapq.heappush(pending, fire)

    def _second_occurrences(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Second occurrences of the repeated wall times in naive ``(start, end]``."""
        walls = croniter(self.expression, start, second_at_beginning=self.has_seconds)
        while (wall := walls.get_next(datetime)) <= end:
            second = _instant(wall, self.zone, 1)
            if second != _instant(wall, self.zone, 0):
                yield second

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants at which a matching wall-clock time fires (the DST rule)."""
        first = _instant(wall, self.zone, 0)
        second = _instant(wall, self.zone, 1)
        if first == second:
            return [first]
        if first.astimezone(self.zone).replace(tzinfo=None) == wall:
            # Repeated (fall back); fold=0 is the earlier occurrence.
            return [first] if self.fixed_hour else [first, second]
        # Skipped (spring forward). An expression about elapsed time (hour ``*``/``*/n``)
        # simply has no fire in the hour that does not exist (Vixie cron's rule: its fires
        # stay an hour apart); a fixed time of day fires at the end of the gap.
        if not self.fixed_hour:
            return []
        # fold=1 reads the wall time with the offset after the change, which lands before
        # it; fold=0 with the offset before, after it.
        hint = self._gap_end
        if hint is None or not second < hint <= first or not _changes_at(self.zone, hint):
            hint = self._gap_end = _offset_change(self.zone, second, first)
        return [hint]

    def fires_between(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Up to ``limit`` fire instants in ``(after, until]``, oldest first, in UTC."""
        # In UTC from here on: two datetimes sharing a zone compare by wall clock, so a
        # window given in local time across a fall-back hour would compare wrongly.
        after = _utc("after", after)
        until = _utc("until", until)
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
        after = _utc("after", after)
        for fire in self._iterate(after):
            if fire > after:
                return fire
        raise AssertionError("unreachable: croniter iterates forever")

    def last_at_or_before(self, at: datetime) -> datetime:
        """The latest fire instant at or before ``at``, in UTC: the instant missed-fire
        detection must look for, by the same DST rule as ``fires_between``.

        croniter's own ``get_prev`` does not follow that rule (in a fall-back hour it
        returns the second occurrence of a fixed-hour time, which never fires). Found with
        ``next_after`` only, which is lazy: a look-back doubling until it reaches a fire,
        then a bisection down to the second, so a dense schedule whose last fire is months
        back costs a few dozen probes, not an enumeration of its fires.
        """
        at = _utc("at", at)

        def fires_within(seconds: int) -> bool:
            return self.next_after(at - timedelta(seconds=seconds)) <= at

        # Invariant: no fire in (at - lo, at]; a fire in (at - hi, at].
        lo, hi = 0, 1
        while not fires_within(hi):
            lo, hi = hi, hi * 2
            if hi > 2**40:  # far beyond the longest gap of an expression that fires
                raise AssertionError("unreachable: a validated expression fires every few years")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fires_within(mid):
                hi = mid
            else:
                lo = mid
        # Fires fall on whole seconds: (at - hi, at - lo] holds exactly one.
        return self.next_after(at - timedelta(seconds=hi))

    def interval_at(self, instant: datetime) -> timedelta:
        """The gap from the first fire after ``instant`` to the one after it: the schedule's
        expected period around ``instant`` (used for missed-fire detection)."""
        first = self.next_after(instant)
        return self.next_after(first) - first

    def __repr__(self) -> str:
        return f"CronExpression({self.expression!r}, {self.timezone!r})"


def _instant(wall: datetime, zone: ZoneInfo, fold: int) -> datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _offset(value: datetime) -> timedelta:
    return value.utcoffset() or timedelta(0)


def _offset_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in ``(before, after]`` at which the zone's offset becomes ``after``'s.

    zoneinfo does not expose its transitions; they fall on whole seconds, so a bisection
    over the (at most a few hours wide) gap finds it in a dozen steps.
    """
    target = _offset(after.astimezone(zone))
    lo, hi = 0, int((after - before).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset((before + timedelta(seconds=mid)).astimezone(zone)) == target:
            hi = mid
        else:
            lo = mid
    return before + timedelta(seconds=hi)


def _changes_at(zone: ZoneInfo, instant: datetime) -> bool:
    tick = timedelta(seconds=1)
    return _offset(instant.astimezone(zone)) != _offset((instant - tick).astimezone(zone))


def _utc(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(name, value, "expected an aware datetime")
    return value.astimezone(UTC)
