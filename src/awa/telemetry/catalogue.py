"""The metrics catalogue: every instrument awa records, as data.

Each instrument has a name constant (what code and tests pass around) and an
``InstrumentSpec`` in ``CATALOGUE`` carrying its kind, unit, attributes and meaning. The
catalogue is the single source of truth: ``Instruments`` creates instruments from it,
``docs/metrics.md`` is generated from it, and the dashboard tests check that every metric a
Grafana panel or an alert rule names is one the catalogue defines, under the exact name the
Prometheus exporter produces (``InstrumentSpec.prometheus_name``; a scrape test keeps that
mapping honest).

Conventions (OpenTelemetry semantic-convention style): durations in seconds (``s``), counts
with a ``{thing}`` annotation unit, attribute keys namespaced ``awa.*`` except the
conventional ``error.type``. Attribute values are low-cardinality (queue, kind, branch,
outcome), never job ids: ids only go on spans.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from awa.telemetry.attributes import (
    ATTR_ACTION,
    ATTR_ATTEMPT,
    ATTR_BRANCH,
    ATTR_BRANCH_SHORT,
    ATTR_CRON_SCHEDULE,
    ATTR_ERROR_TYPE,
    ATTR_JOB_ID,
    ATTR_JOB_KIND,
    ATTR_JOB_STATE,
    ATTR_LANE,
    ATTR_LOOP,
    ATTR_MESSAGING_DESTINATION,
    ATTR_MESSAGING_MESSAGE_ID,
    ATTR_MESSAGING_OPERATION_NAME,
    ATTR_MESSAGING_OPERATION_TYPE,
    ATTR_MESSAGING_SYSTEM,
    ATTR_OUTBOX_SINK,
    ATTR_OUTCOME,
    ATTR_QUEUE,
    ATTR_RESCUE_REASON,
)

__all__ = [
    "BRANCH_DELAYED",
    "BRANCH_DURATION",
    "BRANCH_ERRORS",
    "BRANCH_INTERVAL",
    "BRANCH_LATENESS",
    "BRANCH_OVERRUN",
    "BRANCH_ROWS",
    "CATALOGUE",
    "CRON_FIRED",
    "CRON_MISSED",
    "ELECTIONS",
    "EVENT_LOOP_LAG",
    "FLUSH_ERRORS",
    "HANDLER_DURATION",
    "JOBS_CLAIMED",
    "JOBS_CLAIMED_ON_INSERT",
    "JOBS_FINISHED",
    "JOBS_INSERTED",
    "JOBS_RESCUED",
    "JOBS_STALE_RESULTS",
    "LEADER",
    "LOOP_ERRORS",
    "OUTBOX_BACKLOG",
    "PICKUP_LATENCY",
    "QUEUE_DEPTH",
    "QUEUE_LAG",
    "QUEUE_PAUSED",
    "SECONDS_BUCKETS",
    "SPANS",
    "SPAN_BRANCH_TICK",
    "SPAN_JOB_RUN",
    "InstrumentKind",
    "InstrumentSpec",
    "SpanSpec",
    "prometheus_label",
    "spec",
]

# ----------------------------------------------------------------------------------- names

JOBS_INSERTED: Final = "awa.jobs.inserted"
JOBS_CLAIMED: Final = "awa.jobs.claimed"
JOBS_CLAIMED_ON_INSERT: Final = "awa.jobs.claimed_on_insert"
JOBS_FINISHED: Final = "awa.jobs.finished"
JOBS_RESCUED: Final = "awa.jobs.rescued"
JOBS_STALE_RESULTS: Final = "awa.jobs.stale_results"
HANDLER_DURATION: Final = "awa.handler.duration"
PICKUP_LATENCY: Final = "awa.jobs.pickup_latency"
FLUSH_ERRORS: Final = "awa.flush.errors"
LOOP_ERRORS: Final = "awa.runtime.loop.errors"
EVENT_LOOP_LAG: Final = "awa.runtime.event_loop.lag"
QUEUE_DEPTH: Final = "awa.queue.depth"
QUEUE_LAG: Final = "awa.queue.lag"
QUEUE_PAUSED: Final = "awa.queue.paused"
BRANCH_DURATION: Final = "awa.maintenance.branch.duration"
BRANCH_LATENESS: Final = "awa.maintenance.branch.lateness"
BRANCH_OVERRUN: Final = "awa.maintenance.branch.overrun"
BRANCH_ERRORS: Final = "awa.maintenance.branch.errors"
BRANCH_ROWS: Final = "awa.maintenance.branch.rows"
BRANCH_INTERVAL: Final = "awa.maintenance.branch.interval"
BRANCH_DELAYED: Final = "awa.maintenance.branch.delayed"
ELECTIONS: Final = "awa.maintenance.elections"
LEADER: Final = "awa.maintenance.leader"
CRON_FIRED: Final = "awa.cron.fired"
CRON_MISSED: Final = "awa.cron.missed"
OUTBOX_BACKLOG: Final = "awa.outbox.backlog"

SPAN_JOB_RUN: Final = "awa.job.run"
SPAN_BRANCH_TICK: Final = "awa.maintenance.tick"

SECONDS_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Histogram bucket bounds for every seconds histogram: sub-millisecond pickups up to
five-minute handlers. (The SDK default buckets are sized for milliseconds.)"""


class InstrumentKind(enum.StrEnum):
    """The OpenTelemetry instrument type; decides the Prometheus type and suffixes."""

    COUNTER = "counter"
    UP_DOWN_COUNTER = "up-down counter"
    HISTOGRAM = "histogram"
    OBSERVABLE_GAUGE = "observable gauge"


@dataclass(frozen=True)
class InstrumentSpec:
    """One instrument: what it measures, and how it looks in OTLP and in Prometheus."""

    name: str
    kind: InstrumentKind
    unit: str
    attributes: tuple[str, ...]
    description: str
    where: str
    """Which component records it (a process only exports what it runs)."""

    @property
    def prometheus_name(self) -> str:
        """The metric family name the Prometheus exporter produces: dots become
        underscores, the unit is appended (``s`` → ``_seconds``; ``{…}`` annotations and
        ``1`` add nothing), counters end in ``_total``."""
        name = _sanitize(self.name)
        unit = _prometheus_unit(self.unit)
        if unit and not name.endswith(f"_{unit}"):
            name = f"{name}_{unit}"
        if self.kind is InstrumentKind.COUNTER and not name.endswith("_total"):
            name = f"{name}_total"
        return name

    @property
    def prometheus_series(self) -> tuple[str, ...]:
        """Every sample name of the family (a histogram has three)."""
        if self.kind is InstrumentKind.HISTOGRAM:
            base = self.prometheus_name
            return (f"{base}_bucket", f"{base}_count", f"{base}_sum")
        return (self.prometheus_name,)

    @property
    def prometheus_labels(self) -> tuple[str, ...]:
        return tuple(prometheus_label(a) for a in self.attributes)


@dataclass(frozen=True)
class SpanSpec:
    """One span awa starts, for the generated reference."""

    name: str
    kind: str
    attributes: tuple[str, ...]
    description: str


def prometheus_label(attribute: str) -> str:
    """The Prometheus label an attribute key becomes (``awa.queue`` → ``awa_queue``)."""
    return re.sub(r"[^a-zA-Z0-9]+", "_", attribute)


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9:]+", "_", name)


def _prometheus_unit(unit: str) -> str:
    unit = re.sub(r"\{.*\}", "", unit)
    known = {"": "", "1": "", "s": "seconds"}
    if unit not in known:
        raise ValueError(f"no Prometheus mapping for unit {unit!r}: add it to _prometheus_unit")
    return known[unit]


_C = InstrumentKind.COUNTER
_H = InstrumentKind.HISTOGRAM
_G = InstrumentKind.OBSERVABLE_GAUGE
_BRANCH = (ATTR_LANE, ATTR_BRANCH)

CATALOGUE: Final[tuple[InstrumentSpec, ...]] = (
    InstrumentSpec(
        JOBS_INSERTED, _C, "{job}", (ATTR_QUEUE,),
        "Jobs inserted (a unique-key duplicate that returned the existing job is not counted).",
        "client",
    ),
    InstrumentSpec(
        JOBS_CLAIMED, _C, "{job}", (ATTR_QUEUE,),
        "Jobs claimed by this process's dispatchers (one per attempt).",
        "worker",
    ),
    InstrumentSpec(
        JOBS_CLAIMED_ON_INSERT, _C, "{job}", (ATTR_QUEUE,),
        "Of the claimed jobs, those a producer of this process inserted already claimed "
        "for a free slot here, with no NOTIFY, wake-up or claim round trip (ADR 045).",
        "worker",
    ),
    InstrumentSpec(
        JOBS_FINISHED, _C, "{job}", (ATTR_QUEUE, ATTR_JOB_KIND, ATTR_OUTCOME),
        "Attempts finished, by kind and outcome: completed, retried, failed, cancelled, "
        "snoozed, parked (waiting for a callback), "
        "requeued (shutdown) once the result is written; lost when the job moved on "
        "meanwhile (nothing written). Completed, retried and failed start at 0 for every "
        "kind a handler declares on a queue the runtime serves.",
        "worker",
    ),
    InstrumentSpec(
        JOBS_RESCUED, _C, "{job}", (ATTR_RESCUE_REASON, ATTR_OUTCOME),
        "Attempts recovered by maintenance, by reason (orphaned, heartbeat, deadline, "
        "callback) and outcome (retried, failed).",
        "leader",
    ),
    InstrumentSpec(
        JOBS_STALE_RESULTS, _C, "{job}", (ATTR_QUEUE,),
        "Completions rejected because the job's run_lease moved on (rescued or cancelled "
        "meanwhile); counted, never applied.",
        "worker",
    ),
    InstrumentSpec(
        HANDLER_DURATION, _H, "s", (ATTR_QUEUE, ATTR_JOB_KIND),
        "Handler wall-clock time per attempt.",
        "worker",
    ),
    InstrumentSpec(
        PICKUP_LATENCY, _H, "s", (ATTR_QUEUE,),
        "Claim time minus the time the job became available (its run_at).",
        "worker",
    ),
    InstrumentSpec(
        FLUSH_ERRORS, _C, "{error}", (ATTR_ERROR_TYPE,),
        "Failed completion flushes (the batch is kept and retried).",
        "worker",
    ),
    InstrumentSpec(
        LOOP_ERRORS, _C, "{error}", (ATTR_LOOP, ATTR_ERROR_TYPE),
        "Errors a runtime background loop (heartbeat, flush, claim, liveness, presence, "
        "listener) met and survived: it logged, backed off and went on.",
        "worker",
    ),
    InstrumentSpec(
        EVENT_LOOP_LAG, _H, "s", (),
        "How late the runtime's event loop woke from a 0.1 s sleep: time it could run "
        "nothing, because a handler (named in a warning log) or other synchronous code "
        "blocked it. Maintenance has its own loop and is not measured (ADR 013).",
        "worker",
    ),
    InstrumentSpec(
        QUEUE_DEPTH, _G, "{job}", (ATTR_QUEUE, ATTR_JOB_STATE),
        "Jobs per queue and live state, from the last queue_stats run (leader only: "
        "aggregate across processes with max, not sum).",
        "leader",
    ),
    InstrumentSpec(
        QUEUE_LAG, _G, "s", (ATTR_QUEUE,),
        "Age of the oldest available job per queue (0 when none waits), from the last "
        "queue_stats run (leader only).",
        "leader",
    ),
    InstrumentSpec(
        QUEUE_PAUSED, _G, "1", (ATTR_QUEUE,),
        "1 while an operator has the queue paused (no runtime claims its jobs), else 0, "
        "from the last queue_stats run (leader only).",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_DURATION, _H, "s", _BRANCH,
        "Maintenance branch body wall-clock time.",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_LATENESS, _H, "s", _BRANCH,
        "How long after its due time a branch body started: the starvation signal a "
        "duration alone cannot show.",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_OVERRUN, _C, "{episode}", (*_BRANCH, ATTR_BRANCH_SHORT),
        "Episodes of a branch going from on-time to delayed (with hysteresis; one "
        "increment per episode, not per slow run). Also labelled plain `branch`, so "
        "`awa_maintenance_branch_overrun_total{branch=…}` selects it as operators expect.",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_ERRORS, _C, "{error}", (*_BRANCH, ATTR_ERROR_TYPE),
        "Branch bodies that raised or timed out.",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_ROWS, _C, "{row}", (*_BRANCH, ATTR_ACTION),
        "Rows a branch touched, by action (promoted, deleted, …).",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_INTERVAL, _G, "s", _BRANCH,
        "A branch's configured interval, so dashboards can plot duration against it.",
        "leader",
    ),
    InstrumentSpec(
        BRANCH_DELAYED, _G, "1", _BRANCH,
        "1 while the branch's overrun tracker says delayed, else 0.",
        "leader",
    ),
    InstrumentSpec(
        ELECTIONS, _C, "{election}", (),
        "Maintenance leadership won by this process.",
        "leader",
    ),
    InstrumentSpec(
        LEADER, InstrumentKind.UP_DOWN_COUNTER, "{leader}", (),
        "1 while this process holds maintenance leadership, else 0 (sum across processes: "
        "1 is healthy, 0 means no leader).",
        "leader",
    ),
    InstrumentSpec(
        CRON_FIRED, _C, "{fire}", (ATTR_CRON_SCHEDULE,),
        "Cron fires enqueued (starts at 0 for every schedule the leader evaluates).",
        "leader",
    ),
    InstrumentSpec(
        CRON_MISSED, _C, "{fire}", (ATTR_CRON_SCHEDULE,),
        "Schedules with no successful run within their expected interval plus tolerance "
        "(one per missed fire instant, reported once across leaders, under every misfire "
        "policy; starts at 0 for every schedule the leader evaluates).",
        "leader",
    ),
    InstrumentSpec(
        OUTBOX_BACKLOG, _G, "{event}", (ATTR_OUTBOX_SINK,),
        "Events waiting in the outbox per sink, from the last outbox check.",
        "leader",
    ),
)  # fmt: skip
"""Every instrument, in documentation order."""

SPANS: Final[tuple[SpanSpec, ...]] = (
    SpanSpec(
        SPAN_JOB_RUN,
        "consumer",
        (
            ATTR_JOB_KIND,
            ATTR_QUEUE,
            ATTR_JOB_ID,
            ATTR_ATTEMPT,
            ATTR_OUTCOME,
            ATTR_ERROR_TYPE,
            ATTR_MESSAGING_SYSTEM,
            ATTR_MESSAGING_DESTINATION,
            ATTR_MESSAGING_OPERATION_TYPE,
            ATTR_MESSAGING_OPERATION_NAME,
            ATTR_MESSAGING_MESSAGE_ID,
        ),
        "One handler execution (one attempt). Child of the producer's span when the job's "
        "metadata carries a W3C traceparent (injected at insert when a span is active). "
        "Messaging conventions: `messaging.system` `awa`, `messaging.destination.name` the "
        "queue, `messaging.operation.type` `process`, `messaging.operation.name` `run`, "
        "`messaging.message.id` the job id.",
    ),
    SpanSpec(
        SPAN_BRANCH_TICK,
        "internal",
        (ATTR_LANE, ATTR_BRANCH, ATTR_ERROR_TYPE),
        "One maintenance branch body run.",
    ),
)
"""Every span, for the reference."""

_BY_NAME: Final = {s.name: s for s in CATALOGUE}


def spec(name: str) -> InstrumentSpec:
    """The catalogue entry for ``name`` (``KeyError`` if awa defines no such instrument)."""
    return _BY_NAME[name]
