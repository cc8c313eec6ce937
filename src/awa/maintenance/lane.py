"""A lane: a supervised group of branches sharing a capacity budget and a connection pool.

Each branch runs as its own periodic task in the lane's task group. A capacity limiter
bounds how many branch bodies touch the database at once; waiting for it counts as
*lateness*, which is exactly how a slow neighbour starving a branch becomes visible. Each
run feeds the branch's ``OverrunTracker``; a body that raises or times out is logged,
counted and retried with capped backoff, and never kills the lane. The one exception is
``LeadershipLost`` (a newer leadership term fenced the body's transaction out): it ends the
lane, and with it this leadership.

Scheduling per branch: next due = max(due + interval, finished + min_rest), sooner when the
page was full (``more``) or the branch knows its next work time (``next_due_in``), or when
``wake(topic)`` names a topic the branch ``wakes_on`` (a due time announced by an insert,
redeclared cron schedules, a runtime claiming work). A run that reports ``idle`` doubles the
branch's interval, up to ``interval × idle_stretch``; the first run that is not idle, or a wake-up
on a topic it listens to, restores it (ADR 029; ``MaintenanceConfig.idle_stretch``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import anyio
from anyio.abc import TaskStatus

from awa.backoff import Backoff
from awa.clock import sleep_unless
from awa.config import MaintenanceConfig
from awa.errors import LeadershipLost
from awa.maintenance.branch import Branch, BranchContext, BranchResult
from awa.maintenance.overrun import (
    BranchHealth,
    Observation,
    OverrunPolicy,
    OverrunTracker,
    Transition,
)
from awa.store.maintenance import HealthRow
from awa.telemetry import Instruments

__all__ = ["HEALTH_IDLE_STRETCH", "BranchStats", "Lane", "health_cadence", "take_health_rows"]

log = logging.getLogger("awa.maintenance")


@dataclass
class BranchStats:
    """A branch's schedule and health, kept for the whole leadership (survives a lane-mode
    switch)."""

    branch: Branch
    tracker: OverrunTracker
    next_due: float = 0.0
    wake: anyio.Event = field(default_factory=anyio.Event)
    runs: int = 0
    errors: int = 0
    rows_touched: int = 0
    failures: int = 0
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_duration: float | None = None
    last_lateness: float | None = None
    #: Worst lateness since the health row was last written (``take_health``): one sample
    #: per window would miss a starved run between two on-time ones.
    window_max_lateness: float | None = None
    last_error: str | None = None
    last_result: BranchResult | None = None
    requested: float | None = None  # an explicit wake-up time (monotonic), if any
    #: Consecutive idle runs: the interval is stretched to interval × 2^idle_streak, capped
    #: at ``interval × idle_stretch``.
    idle_streak: int = 0
    #: Work was announced (``resume_cadence``) since the health writer last looked: the
    #: next health interval is the base one even if the branch found itself idle again
    #: at once (a job claimed and finished between the announcement and its run).
    work_announced: bool = False

    @property
    def current_interval(self) -> float:
        """The interval in force: the branch's, or its stretch while idle."""
        base = self.branch.interval
        if not self.idle_streak:
            return base
        return min(base * 2.0 ** min(self.idle_streak, 30), base * self.branch.idle_stretch)

    def take_request(self, not_before: float) -> None:
        """Fold a pending wake-up request into ``next_due``."""
        if self.requested is not None:
            self.next_due = min(self.next_due, max(self.requested, not_before))
            self.requested = None

    @classmethod
    def for_branch(cls, branch: Branch) -> BranchStats:
        return cls(branch, OverrunTracker(OverrunPolicy(interval=branch.interval)))

    def take_health(self, lane: str) -> HealthRow:
        """The health row to persist, closing the lateness window it reports (call
        ``reopen_window`` with it if the write fails, so no run is lost)."""
        row = self.health(lane)
        self.window_max_lateness = None
        return row

    def reopen_window(self, unwritten: HealthRow) -> None:
        """Fold the maximum of a row that could not be written back into the window."""
        if unwritten.max_lateness_s is not None:
            current = self.window_max_lateness
            if current is None or unwritten.max_lateness_s > current:
                self.window_max_lateness = unwritten.max_lateness_s

    def health(self, lane: str) -> HealthRow:
        return HealthRow(
            branch=self.branch.name,
            lane=lane,
            interval_s=self.current_interval,
            last_started_at=self.last_started_at,
            last_finished_at=self.last_finished_at,
            last_duration_s=self.last_duration,
            last_lateness_s=self.last_lateness,
            runs=self.runs,
            errors=self.errors,
            overruns=self.tracker.episodes,
            delayed=self.tracker.health.value == "delayed",
            rows_touched=self.rows_touched,
            last_error=self.last_error,
            max_lateness_s=self.window_max_lateness,
        )


ObservationHook = Callable[[str, BranchStats, Observation], None]

#: How far the health writer stretches its interval while every branch that can stretch
#: is stretched (ADR 041): 5 s -> 20 s on an idle database.
HEALTH_IDLE_STRETCH = 4.0


def health_cadence(config: MaintenanceConfig, stats: Iterable[BranchStats]) -> float:
    """The health writer's next interval (ADR 041). On an idle database every branch that
    may stretch its interval (``Branch.idle_stretch`` > 1) has stretched it, and the health
    rows it would write say only "still idle": writing them every ``base`` seconds was the
    idle leader's largest single cost (12 of its ~63 transactions a minute). Then the
    writer waits ``base × HEALTH_IDLE_STRETCH``; it stores the interval it will wait, so a
    console's STALE threshold (twice the stored interval) follows it. Any branch back at
    its cadence (work arrived), or any branch delayed or failing (an operator watching it
    wants fresh rows), restores ``base`` at the next write; so does work announced since
    the last call, which this call consumes: a branch woken by it may find itself idle
    again before the writer looks (the job already done), and the rows would then never
    show that work arrived. ``idle_stretch=False`` in the config turns it off with the
    branches' stretch."""
    base, stats = config.health_interval, list(stats)
    stretchable = [s for s in stats if s.branch.idle_stretch > 1]
    troubled = any(s.tracker.health is BranchHealth.DELAYED or s.failures for s in stats)
    announced = any(s.work_announced for s in stats)
    for s in stats:
        s.work_announced = False
    idle = bool(stretchable) and not announced and all(s.idle_streak for s in stretchable)
    return base * HEALTH_IDLE_STRETCH if config.idle_stretch and idle and not troubled else base


def _deposed(exc: BaseException) -> bool:
    """Whether ``exc`` is, or (from a task group) contains, ``LeadershipLost``."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(LeadershipLost) is not None
    return isinstance(exc, LeadershipLost)


class Lane:
    def __init__(
        self,
        name: str,
        stats: list[BranchStats],
        capacity: int,
        ctx: BranchContext,
        metrics: Instruments,
        *,
        jitter: float = 0.0,
        on_observation: ObservationHook | None = None,
        reserve: bool = False,
    ) -> None:
        self.name = name
        self.stats = {s.branch.name: s for s in stats}
        self.limiter = anyio.CapacityLimiter(capacity)
        #: With ``reserve``, a slot of its own per branch that asks for one (ADR 030).
        self._own_slots = {
            s.branch.name: anyio.CapacityLimiter(1)
            for s in stats
            if reserve and s.branch.reserved_slot
        }
        self.ctx = ctx
        self.metrics = metrics
        self.jitter = jitter
        self.on_observation = on_observation

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        clock = self.ctx.clock
        for name in self.stats:
            self.metrics.declare_branch(self.name, name)  # series from start (ADR 025)
        async with anyio.create_task_group() as tg:
            for stats in self.stats.values():
                stats.next_due = clock.monotonic() + random.uniform(0, self.jitter)
                tg.start_soon(self._loop, stats, name=f"awa maintenance {stats.branch.name}")
            task_status.started()

    def wake(self, topic: str, in_seconds: float) -> None:
        """Run every branch of this lane that ``wakes_on`` ``topic`` no later than
        ``in_seconds`` from now (none listening: nothing happens)."""
        at = self.ctx.clock.monotonic() + max(0.0, in_seconds)
        for stats in self.stats.values():
            if topic in stats.branch.wakes_on:
                stats.requested = at if stats.requested is None else min(stats.requested, at)
                stats.wake.set()

    def resume_cadence(self, topic: str) -> None:
        """Work appeared (``WORK``): every branch of this lane that listens to ``topic`` and
        is stretched by idleness runs now, and so returns to its normal interval unless it
        finds itself idle again. A branch at its normal cadence is left alone, so frequent
        announcements cost nothing."""
        now = self.ctx.clock.monotonic()
        for stats in self.stats.values():
            if topic not in stats.branch.wakes_on:
                continue
            stats.work_announced = True
            if stats.idle_streak:
                stats.idle_streak = 0
                stats.requested = now
                stats.wake.set()

    async def drive(self, branch: str) -> BranchResult | None:
        """Run one branch body once now, with full accounting (tests and ``tick()``)."""
        stats = self.stats[branch]
        stats.next_due = self.ctx.clock.monotonic()
        return await self._run_body(stats)

    async def _loop(self, stats: BranchStats) -> None:
        clock = self.ctx.clock
        while True:
            stats.take_request(not_before=0.0)
            delay = stats.next_due - clock.monotonic()
            if delay > 0:
                await self._sleep_or_wake(stats, delay)
                continue
            await self._run_body(stats)

    async def _sleep_or_wake(self, stats: BranchStats, delay: float) -> None:
        await sleep_unless(self.ctx.clock, stats.wake, delay)
        if stats.wake.is_set():
            stats.wake = anyio.Event()

    async def _run_body(self, stats: BranchStats) -> BranchResult | None:
        branch = stats.branch
        clock = self.ctx.clock
        due = stats.next_due
        attrs = {"awa.maintenance.lane": self.name, "awa.maintenance.branch": branch.name}
        result: BranchResult | None = None
        async with self._own_slots.get(branch.name, self.limiter):
            started = clock.monotonic()
            lateness = max(0.0, started - due)
            stats.last_started_at = clock.now()
            try:
                with (
                    self.metrics.span_for_branch(self.name, branch.name),
                    anyio.fail_after(branch.timeout),
                ):
                    result = await branch.run_once(self.ctx)
            except Exception as exc:
                if _deposed(exc):
                    # Not this branch's failure: a newer term began, so the leader must stop
                    # leading (ADR 012); counting and retrying would only repeat the refusal.
                    raise
                stats.errors += 1
                stats.failures += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                self.metrics.branch_errors.add(1, {**attrs, "error.type": type(exc).__name__})
                log.warning(
                    "maintenance branch %s (%s lane) failed (%d in a row): %s",
                    branch.name,
                    self.name,
                    stats.failures,
                    stats.last_error,
                    extra={
                        "event": "branch_failed",
                        "lane": self.name,
                        "branch": branch.name,
                        "failures": stats.failures,
                        "error_type": type(exc).__name__,
                    },
                )
            finished = clock.monotonic()
        duration = finished - started
        stats.runs += 1
        stats.last_finished_at = clock.now()
        stats.last_duration = duration
        stats.last_lateness = lateness
        if stats.window_max_lateness is None or lateness > stats.window_max_lateness:
            stats.window_max_lateness = lateness
        self.metrics.branch_duration.record(duration, attrs)
        self.metrics.branch_lateness.record(lateness, attrs)
        observation = stats.tracker.observe(duration, lateness)
        self.metrics.observe_branch(
            self.name,
            branch.name,
            interval=branch.interval,
            delayed=stats.tracker.health.value == "delayed",
        )
        self._report(stats, observation, lateness, duration, attrs)
        if result is not None:
            stretch = result.idle and self.ctx.config.idle_stretch
            stats.idle_streak = stats.idle_streak + 1 if stretch else 0
        interval = stats.current_interval
        next_due = max(due + interval, finished + observation.min_rest)
        if result is None:
            retry = Backoff(base=min(1.0, branch.interval), cap=max(30.0, 4 * branch.interval))
            next_due = finished + max(observation.min_rest, retry.delay(min(stats.failures, 30)))
        else:
            stats.failures = 0
            stats.last_result = result
            stats.rows_touched += result.total
            for action, count in result.rows.items():
                if count:
                    self.metrics.branch_rows.add(count, {**attrs, "awa.maintenance.action": action})
            if result.more:
                next_due = finished + observation.min_rest
            elif result.next_due_in is not None:
                next_due = min(next_due, finished + result.next_due_in)
        stats.next_due = next_due
        stats.take_request(not_before=finished)
        return result

    def _report(
        self,
        stats: BranchStats,
        obs: Observation,
        lateness: float,
        duration: float,
        attrs: dict[str, str],
    ) -> None:
        name = stats.branch.name
        if obs.transition is Transition.BECAME_DELAYED:
            self.metrics.branch_overrun.add(obs.overrun_increment, {**attrs, "branch": name})
            log.warning(
                "maintenance branch %s (%s lane) is DELAYED: load %.2f× its %.3gs interval "
                "(duration %.3fs, lateness %.3fs); overrun episode #%d; pacing to ≥%.3fs rest",
                name,
                self.name,
                obs.ratio,
                stats.branch.interval,
                duration,
                lateness,
                stats.tracker.episodes,
                obs.min_rest,
                extra={
                    "event": "branch_delayed",
                    "lane": self.name,
                    "branch": name,
                    "episode": stats.tracker.episodes,
                    "load": round(obs.ratio, 3),
                },
            )
        elif obs.transition is Transition.RECOVERED:
            log.warning(
                "maintenance branch %s (%s lane) recovered: load %.2f× interval",
                name,
                self.name,
                obs.ratio,
                extra={
                    "event": "branch_recovered",
                    "lane": self.name,
                    "branch": name,
                    "load": round(obs.ratio, 3),
                },
            )
        if self.on_observation is not None:
            self.on_observation(self.name, stats, obs)


def take_health_rows(
    lanes: Mapping[str, Lane], stats: Mapping[str, BranchStats]
) -> list[HealthRow]:
    """Every branch's health row, each in the lane that runs it now, its window closed.
    Built without an await in between: a run finishing meanwhile lands in the next
    window, never in neither."""
    lane_of = {name: lane_name for lane_name, lane in lanes.items() for name in lane.stats}
    return [s.take_health(lane_of.get(name, s.branch.lane)) for name, s in stats.items()]
