"""``Instruments``: the runtime's instruments and spans, created from the catalogue.

Library code records through the OpenTelemetry *API* only: without a configured SDK every
instrument is a no-op and costs almost nothing. ``awa.telemetry.configure`` (or your own SDK
setup) makes them real. Pass an ``Instruments`` built on your own providers to
``awa.Client(metrics=...)`` to isolate a test or a second pipeline; everything a ``Runtime``
records goes through its client's instruments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from awa.clock import SystemClock
from awa.telemetry.attributes import (
    ATTR_BRANCH,
    ATTR_BRANCH_SHORT,
    ATTR_CRON_SCHEDULE,
    ATTR_JOB_KIND,
    ATTR_LANE,
    ATTR_OUTCOME,
    ATTR_QUEUE,
    ATTR_RESCUE_REASON,
)
from awa.telemetry.catalogue import (
    BRANCH_DELAYED,
    BRANCH_DURATION,
    BRANCH_ERRORS,
    BRANCH_INTERVAL,
    BRANCH_LATENESS,
    BRANCH_OVERRUN,
    BRANCH_ROWS,
    CATALOGUE,
    CRON_FIRED,
    CRON_MISSED,
    ELECTIONS,
    EVENT_LOOP_LAG,
    FLUSH_ERRORS,
    HANDLER_DURATION,
    JOBS_CLAIMED,
    JOBS_CLAIMED_ON_INSERT,
    JOBS_FINISHED,
    JOBS_INSERTED,
    JOBS_RESCUED,
    JOBS_STALE_RESULTS,
    LEADER,
    LOOP_ERRORS,
    OUTBOX_BACKLOG,
    PICKUP_LATENCY,
    QUEUE_DEPTH,
    QUEUE_LAG,
    QUEUE_PAUSED,
    SECONDS_BUCKETS,
    InstrumentKind,
    InstrumentSpec,
    spec,
)
from awa.telemetry.gauges import GaugeBoard, board_for
from awa.telemetry.tracing import NO_SPAN, SpanHandle, branch_span, job_span

__all__ = ["BASELINE_OUTCOMES", "RESCUE_REASONS", "Instruments", "instruments"]

#: Outcomes of ``awa.jobs.finished`` given a 0 series per (queue, kind) at runtime start:
#: the ones success-ratio and error-rate alerts divide (the others appear when they occur).
BASELINE_OUTCOMES = ("completed", "retried", "failed")
#: Every ``awa.rescue.reason`` a maintenance branch reports.
RESCUE_REASONS = ("orphaned", "heartbeat", "deadline", "callback")

_SCOPE = "awa"
_NO_OP_TRACER_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_TRACING_RECHECK = 1.0  # seconds
_CLOCK = SystemClock()  # real time on purpose: this paces a configuration check

Reading = Callable[[], list[tuple[float, dict[str, str]]]]
Instrument = metrics.Counter | metrics.UpDownCounter | metrics.Histogram | metrics.ObservableGauge
_I = TypeVar("_I", bound=Instrument)


class Instruments:
    """Every instrument in ``awa.telemetry.CATALOGUE``, bound to one MeterProvider and one
    TracerProvider (the global ones by default, which forward to the SDK once configured).

    Synchronous instruments are attributes (``inserted``, ``claimed``, ``finished``,
    ``rescued``, ``stale_results``, ``handler_duration``, ``pickup_latency``,
    ``flush_errors``, ``branch_duration``, ``branch_lateness``, ``branch_overrun``,
    ``branch_errors``, ``branch_rows``, ``elections``, ``leader``, ``cron_fired``,
    ``cron_missed``); observable gauges are fed through the ``observe_*`` methods.
    """

    def __init__(
        self,
        provider: metrics.MeterProvider | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        is_global = provider is None or provider is metrics.get_meter_provider()
        meter = (provider or metrics.get_meter_provider()).get_meter(_SCOPE)
        self._tracer_provider = tracer_provider
        self._explicit_tracing = not isinstance(tracer_provider, _NO_OP_TRACER_PROVIDERS)
        self._no_tracing_until = 0.0
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(_SCOPE)
        self._board: GaugeBoard = board_for(None if is_global else provider)
        self._by_name: dict[str, Instrument] = {}

        def counter(name: str) -> metrics.Counter:
            s = _checked(name, InstrumentKind.COUNTER)
            return self._keep(
                s.name, meter.create_counter(s.name, unit=s.unit, description=s.description)
            )

        def histogram(name: str) -> metrics.Histogram:
            s = _checked(name, InstrumentKind.HISTOGRAM)
            return self._keep(
                s.name,
                meter.create_histogram(
                    s.name,
                    unit=s.unit,
                    description=s.description,
                    explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
                ),
            )

        def gauge(name: str, read: Reading) -> metrics.ObservableGauge:
            s = _checked(name, InstrumentKind.OBSERVABLE_GAUGE)
            return self._keep(
                s.name,
                meter.create_observable_gauge(
                    s.name, [_callback(read)], unit=s.unit, description=s.description
                ),
            )

        self.inserted = counter(JOBS_INSERTED)
        self.claimed = counter(JOBS_CLAIMED)
        self.claimed_on_insert = counter(JOBS_CLAIMED_ON_INSERT)
        self.finished = counter(JOBS_FINISHED)
        self.rescued = counter(JOBS_RESCUED)
        self.stale_results = counter(JOBS_STALE_RESULTS)
        self.handler_duration = histogram(HANDLER_DURATION)
        self.pickup_latency = histogram(PICKUP_LATENCY)
        self.flush_errors = counter(FLUSH_ERRORS)
        self.loop_errors = counter(LOOP_ERRORS)
        self.event_loop_lag = histogram(EVENT_LOOP_LAG)
        self.branch_duration = histogram(BRANCH_DURATION)
        self.branch_lateness = histogram(BRANCH_LATENESS)
        self.branch_overrun = counter(BRANCH_OVERRUN)
        self.branch_errors = counter(BRANCH_ERRORS)
        self.branch_rows = counter(BRANCH_ROWS)
        self.elections = counter(ELECTIONS)
        leader = _checked(LEADER, InstrumentKind.UP_DOWN_COUNTER)
        self.leader = self._keep(
            leader.name,
            meter.create_up_down_counter(
                leader.name, unit=leader.unit, description=leader.description
            ),
        )
        self.cron_fired = counter(CRON_FIRED)
        self.cron_missed = counter(CRON_MISSED)
        board = self._board
        self.queue_depth = gauge(QUEUE_DEPTH, board.queue_depth)
        self.queue_lag = gauge(QUEUE_LAG, board.queue_lag)
        self.queue_paused = gauge(QUEUE_PAUSED, board.queue_paused)
        self.branch_interval = gauge(BRANCH_INTERVAL, board.branch_interval)
        self.branch_delayed = gauge(BRANCH_DELAYED, board.branch_delayed)
        self.outbox_backlog = gauge(OUTBOX_BACKLOG, board.outbox_backlog)
        missing = {s.name for s in CATALOGUE} - set(self._by_name)
        assert not missing, f"catalogued but never created: {sorted(missing)}"

    def _keep(self, name: str, instrument: _I) -> _I:
        self._by_name[name] = instrument
        return instrument

    def instrument(self, name: str) -> Instrument:
        """The instrument called ``name`` (a catalogue name), for generic code and tests."""
        return self._by_name[name]

    # ------------------------------------------------------------- zero baselines

    def declare_queue(self, queue: str, kinds: Iterable[str]) -> None:
        """Add 0 to the counters a runtime serving ``queue`` will increment, so each series
        exists from start: Prometheus ``increase()``/``rate()`` cannot see the first
        increment of a series that appears with value 1. ``kinds``: the handler kinds
        declared on this queue (bounded by the registered handlers, ADR 025)."""
        self.claimed.add(0, {ATTR_QUEUE: queue})
        self.claimed_on_insert.add(0, {ATTR_QUEUE: queue})
        self.stale_results.add(0, {ATTR_QUEUE: queue})
        for kind in kinds:
            for outcome in BASELINE_OUTCOMES:
                self.finished.add(
                    0, {ATTR_QUEUE: queue, ATTR_JOB_KIND: kind, ATTR_OUTCOME: outcome}
                )

    def declare_branch(self, lane: str, branch: str) -> None:
        """Add 0 to a branch's overrun counter when a lane starts running it."""
        self.branch_overrun.add(
            0, {ATTR_LANE: lane, ATTR_BRANCH: branch, ATTR_BRANCH_SHORT: branch}
        )

    def declare_leadership(self) -> None:
        """Add 0 to the leader's counters whose label sets are known in advance (rescues by
        reason and outcome, elections) when leadership starts."""
        self.elections.add(0)
        for reason in RESCUE_REASONS:
            for outcome in ("retried", "failed"):
                self.rescued.add(0, {ATTR_RESCUE_REASON: reason, ATTR_OUTCOME: outcome})

    def declare_schedule(self, schedule: str) -> None:
        """Add 0 to ``awa.cron.fired`` / ``awa.cron.missed`` for a schedule the leader
        evaluates."""
        attributes = {ATTR_CRON_SCHEDULE: schedule}
        self.cron_fired.add(0, attributes)
        self.cron_missed.add(0, attributes)

    # ------------------------------------------------------------------ observations

    def observe_queue_stats(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Feed ``awa.queue.depth`` / ``awa.queue.lag`` from the rows the ``queue_stats``
        branch computed (dicts with ``queue``, ``state``, ``count``, ``lag_s``)."""
        self._board.set_queue_stats(rows)

    def observe_queue_paused(self, paused: Mapping[str, bool]) -> None:
        """Feed ``awa.queue.paused``: queue name → whether an operator has it paused (the
        ``queue_stats`` branch reports every queue with live jobs, and every paused one)."""
        self._board.set_queue_paused(paused)

    def observe_branch(self, lane: str, branch: str, *, interval: float, delayed: bool) -> None:
        """Feed ``awa.maintenance.branch.interval`` / ``.delayed`` after a branch run."""
        self._board.set_branch(lane, branch, interval, delayed)

    def observe_outbox_backlog(self, backlog: Mapping[str, int]) -> None:
        """Feed ``awa.outbox.backlog``: sink name → events waiting."""
        self._board.set_outbox_backlog(backlog)

    def clear_leader_gauges(self) -> None:
        """Drop every leader-computed gauge value (call when leadership ends)."""
        self._board.clear()

    # ------------------------------------------------------------------------ spans

    def job_span(
        self,
        *,
        kind: str,
        queue: str,
        job_id: int,
        attempt: int,
        metadata: Mapping[str, Any] | None,
    ) -> AbstractContextManager[SpanHandle]:
        """The ``awa.job.run`` span for one execution (see ``awa.telemetry.tracing``)."""
        if not self._tracing():
            return NO_SPAN
        return job_span(
            self._tracer, kind=kind, queue=queue, job_id=job_id, attempt=attempt, metadata=metadata
        )

    def span_for_branch(self, lane: str, branch: str) -> AbstractContextManager[SpanHandle]:
        """The ``awa.maintenance.tick`` span for one branch body run."""
        if not self._tracing():
            return NO_SPAN
        return branch_span(self._tracer, lane, branch)

    def _tracing(self) -> bool:
        """False while no SDK TracerProvider is installed: a span would be a no-op anyway,
        and skipping it keeps the per-job cost near zero. Asking the global provider costs
        an environment lookup while none is set, so a "no" is trusted for a second: spans
        start at most that long after ``configure()``."""
        if self._tracer_provider is not None:
            return self._explicit_tracing
        now = _CLOCK.monotonic()
        if now < self._no_tracing_until:
            return False
        if isinstance(trace.get_tracer_provider(), _NO_OP_TRACER_PROVIDERS):
            self._no_tracing_until = now + _TRACING_RECHECK
            return False
        return True


def _checked(name: str, kind: InstrumentKind) -> InstrumentSpec:
    entry = spec(name)
    if entry.kind is not kind:
        raise AssertionError(f"{name} is a {entry.kind} in the catalogue, not a {kind}")
    return entry


def _callback(read: Reading) -> Callable[[CallbackOptions], Iterator[Observation]]:
    def observe(options: CallbackOptions) -> Iterator[Observation]:
        for value, attributes in read():
            yield Observation(value, attributes)

    return observe


_default: Instruments | None = None


def instruments() -> Instruments:
    """Instruments bound to the global providers (created on first use)."""
    global _default
    if _default is None:
        _default = Instruments()
    return _default
