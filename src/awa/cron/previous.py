"""The latest fire instant at or before a time: what missed-fire detection checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter

from awa.cron.expression import CronExpression

__all__ = ["previous_fire"]


def previous_fire(expression: CronExpression, at: datetime) -> datetime:
    """The latest instant of ``expression`` at or before ``at``, in UTC."""
    start = (at + timedelta(microseconds=1)).astimezone(expression.zone)
    it = croniter(expression.expression, start, second_at_beginning=expression.has_seconds)
    fire: datetime = it.get_prev(datetime)
    return fire.astimezone(UTC)
