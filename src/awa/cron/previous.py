"""The latest fire instant at or before a time: what missed-fire detection checks."""

from __future__ import annotations

from datetime import datetime

from awa.cron.expression import CronExpression

__all__ = ["previous_fire"]


def previous_fire(expression: CronExpression, at: datetime) -> datetime:
    """The latest instant of ``expression`` at or before ``at``, in UTC, under the same DST
    rule as its fires (so a repeated fall-back hour is never reported as a missed fire)."""
    return expression.last_at_or_before(at)
