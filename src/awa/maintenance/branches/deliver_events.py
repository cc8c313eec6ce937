"""``deliver_events`` (hygiene lane): deliver outbox events to sinks, with retry and backoff.

Events are written to ``awa.events`` by the statements that make the changes (ADR 006).
Per run (default every 5 s, at once again while a page was full; stretched up to 40 s while
idle, see ADR 029):

1. **register** this process's sinks (first run, then every ``housekeeping_interval``) and
   **fan out** up to ``fan_out_batch`` (1000) new events: one pending delivery per
   (event, sink) whose subscription matches, for this process's sinks *and every other
   registered sink*, so a leader that lacks a sink (an older version mid-deploy, a
   maintenance-only process) queues its deliveries instead of skipping them. Delivery
   state is per (event, sink): sinks never wait for each other;
2. **claim**, per sink of this process not resting after a failure, up to ``batch`` (100)
   due deliveries (``FOR UPDATE SKIP LOCKED``, then a lease of ``timeout + 30`` s recorded
   on the row, so no transaction stays open across HTTP calls, and a run that dies mid-way
   loses nothing: its claims fall due again when the lease ends);
3. **deliver**, sinks concurrently, each sink's events in order, each call bounded by
   ``delivery_timeout`` (10 s) and the run by ``run_budget`` (5 s: a slow sink cannot hold
   the hygiene lane; deliveries left over are deferred, not failed). A sink that is
   unavailable (``SinkUnavailable`` or any unexpected error) is not called again this run:
   its failed delivery is retried with capped exponential backoff plus jitter, the rest keep
   their place, and the sink rests ``backoff`` (1 s doubling to 60 s, ±20 %; longer when
   it sent ``Retry-After``) so an outage costs one probe per step, not the backlog. An
   event the sink refused (``EventRejected``) is retried on its own backoff while the sink
   goes on with others, and parked as undeliverable at its ``park_after_rejections``-th
   (20) refusal;
4. **record** outcomes in one statement per sink, each under the lease it was claimed with
   (shielded from the lane's timeout, so a finished delivery is not sent again), and the
   sink's health (failure streak, rest, last error, totals) in ``awa.event_sinks``;
5. every ``housekeeping_interval`` (60 s): delete up to ``expire_batch`` (1000) events
   older than ``retention`` (7 days) with nothing outstanding, and warn (once per sink)
   about deliveries waiting for registered sinks this process is not configured with;
   every ``backlog_interval`` (10 s): feed the ``awa.outbox.backlog`` gauge (outstanding
   deliveries per sink).

Guarantees: delivery is **at least once** per (event, sink); receivers deduplicate on the
event id (``Idempotency-Key``). An unavailable sink never affects the jobs that produced its
events (they committed before delivery starts) and never loses an event: only a refused
event is parked, and parked deliveries are kept until an operator flushes (retries) or
purges them (``Store.events.event_flush`` / ``event_purge``).

Diagnostics: one WARNING when a sink becomes unavailable (with the error and its backlog),
one when it recovers, one per run that parks events (sink, attempts, last error).

Rows (``awa.maintenance.branch.rows{action=…}``): ``fanned_out``, ``delivered``,
``failed`` (attempts that did not land), ``deferred``, ``parked``, ``expired``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Self

import anyio

from awa.backoff import Backoff
from awa.clock import Clock
from awa.events import EventRejected, Sink, SinkUnavailable
from awa.maintenance.branch import HYGIENE, WORK, Branch, BranchContext, BranchResult
from awa.maintenance.options import BranchOptions
from awa.store.events import AppliedResult, ClaimedDelivery, DeliveryResult

__all__ = ["DEFAULT_EVENT_BACKOFF", "DeliverEvents"]

log = logging.getLogger("awa.events")

#: Retry delays after a failed delivery, and rests of an unavailable sink.
DEFAULT_EVENT_BACKOFF: Final = Backoff(base=1.0, factor=2.0, cap=60.0, jitter=0.2)

_ERROR_LIMIT = 500
_RETRY_AFTER_CAP = 3600.0
_RECORD_TIMEOUT = 10.0


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, SinkUnavailable | EventRejected):
        text = str(exc)
    elif isinstance(exc, TimeoutError):
        text = f"delivery timed out after {timeout:g}s"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:_ERROR_LIMIT]


@dataclass
class _SinkRun:
    """One sink's deliveries in one run: what happened to each claimed delivery."""

    claimed: list[ClaimedDelivery]
    results: dict[int, DeliveryResult] = field(default_factory=dict)
    unavailable: str | None = None
    retry_after: float | None = None

    def settle(self, d: ClaimedDelivery, result: DeliveryResult) -> None:
        self.results[d.event.id] = result

    def defer_rest(self) -> None:
        for d in self.claimed:
            if d.event.id not in self.results:
                self.results[d.event.id] = DeliveryResult(
                    d.event.id, d.lease, "deferred", due_at=d.due_at
                )

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results.values())


class DeliverEvents(Branch):
    name = "deliver_events"
    lane = HYGIENE
    default_interval = 5.0
    default_timeout = 30.0
    #: A run that fanned out, claimed and expired nothing is idle: the interval stretches to
    #: this until a claim is announced (``WORK``; most events come from job lifecycles), so
    #: on an idle database an event or a delivery retry waits up to 40 s (ADR 029).
    wakes_on = frozenset({WORK})
    idle_stretch = 8.0

    def __init__(
        self,
        sinks: Sequence[Sink] = (),
        *,
        batch: int = 100,
        fan_out_batch: int = 1000,
        delivery_timeout: float = 10.0,
        run_budget: float = 5.0,
        backoff: Backoff = DEFAULT_EVENT_BACKOFF,
        park_after_rejections: int = 20,
        retention: float = 7 * 86400.0,
        expire_batch: int = 1000,
        housekeeping_interval: float = 60.0,
        backlog_interval: float = 10.0,
        interval: float | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(interval=interval, timeout=timeout)
        names = [s.name for s in sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{self.name}: duplicate sink names {duplicates}")
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise TypeError(f"{self.name}: {sink!r} does not implement awa.events.Sink")
        for label, value in (("batch", batch), ("fan_out_batch", fan_out_batch)):
            if not 1 <= value <= 100_000:
                raise ValueError(f"{self.name}: {label} must be 1..100000, got {value!r}")
        if not park_after_rejections >= 1:
            raise ValueError(f"{self.name}: park_after_rejections must be >= 1")
        for label, seconds in (
            ("delivery_timeout", delivery_timeout),
            ("run_budget", run_budget),
            ("retention", retention),
            ("housekeeping_interval", housekeeping_interval),
            ("backlog_interval", backlog_interval),
        ):
            if not seconds > 0:
                raise ValueError(f"{self.name}: {label} must be > 0 seconds, got {seconds!r}")
        self.sinks = list(sinks)
        self.batch = batch
        self.fan_out_batch = fan_out_batch
        self.delivery_timeout = delivery_timeout
        self.run_budget = run_budget
        self.backoff = backoff
        self.park_after_rejections = park_after_rejections
        self.retention = retention
        self.expire_batch = expire_batch
        self.housekeeping_interval = housekeeping_interval
        self._subscriptions = [(s.name, s.kinds) for s in self.sinks]
        self.backlog_interval = backlog_interval
        self._next_housekeeping: float | None = None
        self._next_backlog: float | None = None
        self._unknown_warned: set[str] = set()

    @property
    def lease(self) -> float:
        """How long a claim hides a delivery: longer than any run can last."""
        return self.timeout + 30.0

    @classmethod
    def from_options(cls, options: BranchOptions) -> Self | None:
        """Always built, even without sinks: it also expires delivered events."""
        return cls(options.sinks, interval=options.interval(cls.name))

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        store = ctx.store
        housekeeping = self._housekeeping_due(ctx.clock)
        if housekeeping:
            await store.events.event_register_sinks(self._subscriptions, ctx.now)
        events, _ = await store.events.event_fan_out(
            self._subscriptions, self.fan_out_batch, ctx.now
        )
        more = events >= self.fan_out_batch
        rows = {"fanned_out": events, "delivered": 0, "failed": 0, "deferred": 0, "parked": 0}
        claims = {
            s.name: await store.events.event_claim(s.name, self.batch, self.lease, ctx.now)
            for s in self.sinks
        }
        runs = {name: _SinkRun(claimed) for name, claimed in claims.items() if claimed}
        deadline = ctx.clock.monotonic() + self.run_budget
        async with anyio.create_task_group() as tg:
            for sink in self.sinks:
                if sink.name in runs:
                    tg.start_soon(self._deliver, sink, runs[sink.name], deadline, ctx.clock)
        for name, run in runs.items():
            run.defer_rest()
            parked = 0
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RECORD_TIMEOUT):
                parked = await self._record(ctx, name, run)
            for outcome in ("delivered", "failed", "deferred"):
                rows[outcome] += run.count(outcome)
            rows["parked"] += parked
            if run.unavailable is None and (
                len(run.claimed) >= self.batch or run.count("deferred")
            ):
                more = True  # a full page, or the run budget ran out: go on at once
        rows["expired"] = 0
        if housekeeping:
            rows["expired"] = await self._housekeeping(ctx)
        mono = ctx.clock.monotonic()
        if self._next_backlog is None or mono >= self._next_backlog:
            self._next_backlog = mono + self.backlog_interval
            ctx.metrics.observe_outbox_backlog(await store.events.event_backlog())
        idle = not events and not runs and not rows["expired"]
        return BranchResult(rows, more=more or rows["expired"] >= self.expire_batch, idle=idle)

    async def _deliver(self, sink: Sink, run: _SinkRun, deadline: float, clock: Clock) -> None:
        """Hand each claimed event to the sink in order; never raises (outcomes go to
        ``run``), so one sink's failure cannot cancel another's deliveries."""
        try:
            async with sink.open() as deliver:
                for d in run.claimed:
                    if run.unavailable is not None or clock.monotonic() >= deadline:
                        break
                    try:
                        with anyio.fail_after(self.delivery_timeout):
                            await deliver(d.event)
                    except EventRejected as exc:
                        run.settle(d, self._failed(d, exc, rejected=True))
                    except Exception as exc:  # any other failure: the sink is unavailable
                        run.settle(d, self._failed(d, exc, rejected=False))
                        run.unavailable = _describe(exc, self.delivery_timeout)
                        if isinstance(exc, SinkUnavailable):
                            run.retry_after = exc.retry_after
                    else:
                        run.settle(d, DeliveryResult(d.event.id, d.lease, "delivered", d.due_at))
        except Exception as exc:  # opening or closing the sink's session failed
            if run.unavailable is None:
                run.unavailable = _describe(exc, self.delivery_timeout)

    def _failed(self, d: ClaimedDelivery, exc: Exception, *, rejected: bool) -> DeliveryResult:
        return DeliveryResult(
            d.event.id,
            d.lease,
            "failed",
            due_at=d.due_at,
            delay_s=self.backoff.delay(d.attempts + 1),
            rejected=rejected,
            error=_describe(exc, self.delivery_timeout),
        )

    async def _record(self, ctx: BranchContext, name: str, run: _SinkRun) -> int:
        """Write the run's outcomes and the sink's health; log transitions. Returns how
        many deliveries were parked."""
        store = ctx.store
        applied = await store.events.event_record(
            name,
            list(run.results.values()),
            park_after_rejections=self.park_after_rejections,
            now=ctx.now,
        )
        parked = [a for a in applied if a.parked]
        delivered = sum(a.outcome == "delivered" for a in applied)
        failed = sum(a.outcome == "failed" for a in applied)
        rest = 0.0
        if run.unavailable is not None:
            streak = await store.events.event_sink_failures(name)
            rest = self.backoff.delay(min(streak + 1, 64))
            if run.retry_after is not None:
                rest = max(rest, min(run.retry_after, _RETRY_AFTER_CAP))
        if not (delivered or failed or run.unavailable):
            return 0
        errors = [r.error for r in run.results.values() if r.error]
        report = await store.events.event_sink_report(
            name,
            delivered=delivered,
            failed=failed,
            parked=len(parked),
            unavailable=run.unavailable is not None,
            rest_s=rest,
            error=run.unavailable or (errors[-1] if errors else None),
            now=ctx.now,
        )
        if report is None:  # the sink was forgotten meanwhile
            return len(parked)
        waiting = len(run.claimed) - delivered
        if run.unavailable is not None and report.failures_before == 0:
            log.warning(
                "event sink %r is unavailable: %s; its events wait (%d in this batch), none "
                "dropped; retrying with backoff (next try in %.1fs)",
                name,
                run.unavailable,
                waiting,
                rest,
            )
        elif run.unavailable is not None:
            log.info(
                "event sink %r still unavailable (%d failures in a row since %s): %s; "
                "next try in %.1fs",
                name,
                report.failures,
                report.failing_since.isoformat() if report.failing_since else "?",
                run.unavailable,
                rest,
            )
        elif report.failures_before > 0 and report.failures == 0:
            log.warning(
                "event sink %r recovered after %d failed attempt(s); delivering its backlog",
                name,
                report.failures_before,
            )
        if parked:
            self._report_parked(name, parked)
        return len(parked)

    def _report_parked(self, name: str, parked: list[AppliedResult]) -> None:
        latest = max(parked, key=lambda a: a.event_id)
        log.warning(
            "event sink %r refused %d event(s) %d times each: parked as undeliverable "
            "(latest: event %d after %d attempts, last error: %s). They are kept; "
            "flush the sink's deliveries to retry them, or purge them to drop them",
            name,
            len(parked),
            self.park_after_rejections,
            latest.event_id,
            latest.attempts,
            latest.last_error,
        )

    def _housekeeping_due(self, clock: Clock) -> bool:
        now = clock.monotonic()
        if self._next_housekeeping is not None and now < self._next_housekeeping:
            return False
        self._next_housekeeping = now + self.housekeeping_interval
        return True

    async def _housekeeping(self, ctx: BranchContext) -> int:
        """Retention (one bounded batch; a full batch brings the next one forward) and
        warnings about deliveries that wait for sinks this process does not have."""
        expired = await ctx.store.events.event_expire(self.retention, self.expire_batch, ctx.now)
        if expired >= self.expire_batch:
            self._next_housekeeping = None
        unknown = await ctx.store.events.event_unknown_sinks([s.name for s in self.sinks])
        for u in unknown:
            if u["sink"] not in self._unknown_warned:
                log.warning(
                    "%d event deliveries wait for sink %r (oldest %s), which this process "
                    "is not configured with: they are delivered when a leader that has it "
                    "runs; forget the sink if it was removed on purpose",
                    u["outstanding"],
                    u["sink"],
                    u["oldest"].isoformat(),
                )
        self._unknown_warned = {str(u["sink"]) for u in unknown}
        return expired
