"""``cron_evaluate`` (hygiene lane): enqueue cron fires, apply misfire and overlap policies,
and detect missed fires. Leader only.

Per active schedule (not paused, not orphaned) and per run:

1. list the fire instants since the schedule's evaluation mark (``evaluated_through``);
   instants older than the catch-up window are missed under every policy and are only
   counted (bounded enumeration, so a schedule off for a year costs one bounded pass);
2. decide with the pure ``awa.cron.plan_fires`` (misfire: skip / catchup_all /
   catchup_latest; overlap: allow / skip / buffer_one, using the state of the previous
   fire's job);
3. in one transaction: compare-and-set the mark from the value read in step 1 and enqueue
   the fires. A second leader (failover, split brain during a network partition) that read
   the same mark loses the compare-and-set and enqueues nothing, and a crash rolls back
   both together: an instant is enqueued at most once and never lost between the steps.
   Each job carries ``metadata["awa.cron"] = {"schedule", "scheduled_at"}``;
4. missed-fire detection: if the latest instant at or before ``now - miss_tolerance`` has
   no successful run (its job has not completed), report it once (claimed in the database
   so two leaders do not both report): a WARNING log, a ``cron.missed`` outbox event
   (written by the claim's own statement) and the ``cron_missed`` row count (exported as
   ``awa.maintenance.branch.rows{action=missed_alert}``), even under ``skip``, and one
   increment of ``awa.cron.missed{awa.cron.schedule}``.

Each enqueued fire also writes a ``cron.fired`` outbox event in the transaction of step 3
and, once that transaction committed, counts one ``awa.cron.fired{awa.cron.schedule}``.
Both counters start at 0 for every schedule the first time this leader sees it, so a
Prometheus ``increase()`` sees the first fire and the first miss (ADR 025).

The branch asks to run again at the soonest next fire (``next_due_in``), so fires happen
within milliseconds of their instant, not a polling period later.

Defaults: interval 5 s (backstop; it also wakes at the next fire instant and when schedules
are (re)declared), timeout 30 s, ``on_time`` 5 s (a fire found at most this
late is a normal trigger, not a misfire). Rows: ``fired``, ``missed``, ``overlap_skipped``,
``lost_race``, ``missed_alert``, ``invalid`` (schedules whose stored row cannot make a job:
each is logged once per distinct error, skipped, and does not stop the others).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from awa.cron import Action, CronExpression, Misfire, Overlap, PreviousJob, plan_fires
from awa.cron.previous import previous_fire
from awa.db.connect import decode_json
from awa.maintenance.branch import CRON_CHANGED, HYGIENE, Branch, BranchContext, BranchResult
from awa.model import InsertParams
from awa.telemetry import ATTR_CRON_SCHEDULE

__all__ = ["CronEvaluate", "MissedFire"]

log = logging.getLogger("awa.cron")

#: Most instants enumerated per schedule and pass (bounds a pass after a long outage).
MAX_INSTANTS = 100_000

_PENDING = {"scheduled", "available", "retryable"}
_RUNNING = {"running", "waiting_external"}


def previous_job(state: str | None) -> PreviousJob:
    if state in _PENDING:
        return PreviousJob.PENDING
    if state in _RUNNING:
        return PreviousJob.RUNNING
    return PreviousJob.NONE


class MissedFire:
    """What missed-fire detection reports (passed to ``on_missed`` hooks)."""

    def __init__(self, schedule: str, instant: datetime, row: dict[str, Any]) -> None:
        self.schedule = schedule
        self.instant = instant
        self.last_success_at: datetime | None = row.get("last_success_at")
        self.last_fire_at: datetime | None = row.get("last_fire_at")


class CronEvaluate(Branch):
    name = "cron_evaluate"
    lane = HYGIENE
    default_interval = 5.0
    default_timeout = 30.0
    wakes_on = frozenset({CRON_CHANGED})
    #: With no active schedule there is nothing to fire until schedules are (re)declared,
    #: which is announced (``CRON_CHANGED``) or seen by ``cron_sync`` (ADR 029).
    idle_stretch = 12.0
    #: A fire is due at a second the user chose: slow hygiene bodies holding both shared
    #: slots must not delay it (issue 19, ADR 030).
    reserved_slot = True

    def __init__(
        self,
        on_time: float = 5.0,
        on_missed: Callable[[MissedFire], None] | None = None,
        **kwargs: float | None,
    ) -> None:
        super().__init__(**kwargs)
        self.on_time = on_time
        self.on_missed = on_missed
        self._expressions: dict[tuple[str, str], CronExpression] = {}
        self._invalid: dict[str, str] = {}
        self._declared: set[str] = set()

    def _report_invalid(self, name: str, exc: Exception) -> None:
        """Log a schedule that cannot be evaluated once per distinct error (it is retried
        every pass and counted in the ``invalid`` rows each time)."""
        message = f"{type(exc).__name__}: {exc}"
        if self._invalid.get(name) != message:
            self._invalid[name] = message
            log.error(
                "cron schedule %r cannot be evaluated and will not fire until it is "
                "re-declared: %s (other schedules are unaffected)",
                name,
                message,
            )

    def _expression(self, row: dict[str, Any]) -> CronExpression:
        key = (str(row["expression"]), str(row["timezone"]))
        if key not in self._expressions:
            self._expressions[key] = CronExpression(*key)
        return self._expressions[key]

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        rows = await ctx.store.cron.cron_active()
        if any(_success_unknown(row) for row in rows):
            await ctx.store.cron.cron_refresh_success()
            rows = await ctx.store.cron.cron_active()
        totals = {"fired": 0, "missed": 0, "overlap_skipped": 0, "lost_race": 0, "invalid": 0}
        alerts = 0
        more = False
        soonest: float | None = None
        for row in rows:
            name = str(row["name"])
            if name not in self._declared:
                ctx.metrics.declare_schedule(name)
                self._declared.add(name)
            now = ctx.clock.now()
            try:
                outcome = await self._evaluate(ctx, row, now)
            except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
                # A stored row no valid declaration produces (an older deploy's, or edited
                # by hand): it failed before its transaction committed anything, and the
                # other schedules must still fire.
                self._report_invalid(str(row["name"]), exc)
                totals["invalid"] += 1
                continue
            self._invalid.pop(str(row["name"]), None)
            try:
                alerted = await self._detect_missed(ctx, row, now)
            except (ValueError, TypeError) as exc:  # its fires above are committed
                log.error("cron schedule %r: missed-fire detection failed: %s", row["name"], exc)
                alerted = False
            for key, value in outcome.items():
                if key in totals:
                    totals[key] += value
            more = more or bool(outcome.get("more"))
            alerts += alerted
            wait = outcome.get("next_in")
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        return BranchResult(
            {**totals, "missed_alert": alerts}, more=more, next_due_in=soonest, idle=not rows
        )

    async def _evaluate(
        self, ctx: BranchContext, row: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        name = str(row["name"])
        expr = self._expression(row)
        mark: datetime = row["evaluated_through"]
        window_s = max(float(row["catchup_window_s"]), self.on_time)
        horizon = now - timedelta(seconds=window_s)
        stale: list[datetime] = []
        start = mark
        if mark < horizon:
            stale = expr.fires_between(mark, horizon, MAX_INSTANTS)
            start = stale[-1] if len(stale) >= MAX_INSTANTS else horizon
        more = len(stale) >= MAX_INSTANTS
        due = [] if more else expr.fires_between(start, now, MAX_INSTANTS)
        plan = plan_fires(
            due,
            now=now,
            misfire=Misfire(row["misfire"]),
            overlap=Overlap(row["overlap"]),
            window_s=float(row["catchup_window_s"]),
            on_time_s=self.on_time,
            max_catchup=int(row["max_catchup"]),
            previous=previous_job(row["previous_state"]),
        )
        new_mark = start if more else plan.evaluated_through
        if len(due) >= MAX_INSTANTS:
            new_mark = min(new_mark, due[-1])
            more = True
        if plan.evaluated_through < now:
            more = True  # catch-up was bounded: continue at once
        fires = plan.fires
        missed = stale + plan.missed
        overlapped = plan.instants(Action.OVERLAP)
        next_fire = expr.next_after(now)
        if new_mark <= mark and not fires and not missed and not overlapped:
            return {"next_in": (next_fire - now).total_seconds()}
        params = [self._job(row, instant) for instant in fires]
        ids = await ctx.store.cron.cron_advance(
            name,
            expected_mark=mark,
            new_mark=max(new_mark, mark),
            fires=params,
            last_fire_at=fires[-1] if fires else None,
            missed=len(missed),
            last_missed_at=max(missed) if missed else None,
            overlapped=len(overlapped),
            next_fire_at=next_fire,
            now=ctx.now,
        )
        if ids is None:
            log.info("cron schedule %r: another evaluator advanced it first; skipped", name)
            return {"lost_race": 1, "next_in": (next_fire - now).total_seconds()}
        if ids:
            ctx.metrics.cron_fired.add(len(ids), {ATTR_CRON_SCHEDULE: name})
        if missed:
            log.info(
                "cron schedule %r: %d fire(s) recorded as missed (misfire=%s, window %gs), "
                "latest %s",
                name,
                len(missed),
                row["misfire"],
                float(row["catchup_window_s"]),
                max(missed).isoformat(),
            )
        if overlapped:
            log.info(
                "cron schedule %r: %d fire(s) not enqueued: previous job still %s (overlap=%s)",
                name,
                len(overlapped),
                row["previous_state"],
                row["overlap"],
            )
        return {
            "fired": len(ids),
            "missed": len(missed),
            "overlap_skipped": len(overlapped),
            "more": more,
            "next_in": 0.0 if more else (next_fire - now).total_seconds(),
        }

    @staticmethod
    def _job(row: dict[str, Any], instant: datetime) -> InsertParams:
        metadata = _as_json(row["metadata"]) or {}
        metadata["awa.cron"] = {"schedule": row["name"], "scheduled_at": instant.isoformat()}
        return InsertParams(
            kind=str(row["kind"]),
            args=_as_json(row["args"]),
            queue=str(row["queue"]),
            priority=int(row["priority"]),
            max_attempts=int(row["max_attempts"]),
            tags=list(row["tags"] or ()),
            metadata=metadata,
        )

    async def _detect_missed(self, ctx: BranchContext, row: dict[str, Any], now: datetime) -> bool:
        tolerance = timedelta(seconds=float(row["miss_tolerance_s"]))
        latest = previous_fire(self._expression(row), now - tolerance)
        if latest <= row["declared_at"]:
            return False  # the schedule did not exist yet
        success: datetime | None = row["last_success_at"]
        if success is not None and success >= latest:
            return False
        alerted: datetime | None = row["miss_alerted_for"]
        if alerted is not None and alerted >= latest:
            return False
        if not await ctx.store.cron.cron_mark_alerted(str(row["name"]), latest, ctx.now):
            return False
        ctx.metrics.cron_missed.add(1, {ATTR_CRON_SCHEDULE: str(row["name"])})
        log.warning(
            "cron schedule %r MISSED: no successful run for its fire at %s within %gs "
            "(last success: %s; last fire: %s; misfire=%s)",
            row["name"],
            latest.isoformat(),
            tolerance.total_seconds(),
            success.isoformat() if success else "never",
            row["last_fire_at"].isoformat() if row["last_fire_at"] else "never",
            row["misfire"],
            extra={"event": "cron_missed", "schedule": str(row["name"])},
        )
        if self.on_missed is not None:
            try:
                self.on_missed(MissedFire(str(row["name"]), latest, row))
            except Exception:  # a user hook must not stop evaluation of the other schedules
                log.exception("cron on_missed hook failed for schedule %r", row["name"])
        return True


def _success_unknown(row: dict[str, Any]) -> bool:
    """The last fire's job may have completed since we last looked."""
    fired = row["last_fired_job_id"]
    return fired is not None and fired != row["last_success_job_id"]


def _as_json(value: Any) -> Any:
    """jsonb arrives decoded or as text depending on the codec in use."""
    if isinstance(value, str):
        return decode_json(value)
    if isinstance(value, dict):
        return dict(value)
    return value
