"""Telemetry: the one package that imports OpenTelemetry.

- ``catalogue``: every metric and span awa emits, as documented constants
  (``CATALOGUE``; rendered to ``docs/metrics.md`` by ``docs/generate_metrics.py``).
- ``instrumentation``: ``Instruments``, the API-only instruments library code records into
  (no-ops until an SDK is configured), and the span helpers.
- ``tracing``: job-execution and maintenance-tick spans; trace context carried from the
  producer to the job through its metadata.
- ``export``: ``configure(...)``, which installs the SDK with OTLP and/or Prometheus export.

Everything below is importable from ``awa.telemetry`` directly.
"""

from awa.telemetry.attributes import ATTR_ACTION as ATTR_ACTION
from awa.telemetry.attributes import ATTR_ATTEMPT as ATTR_ATTEMPT
from awa.telemetry.attributes import ATTR_BRANCH as ATTR_BRANCH
from awa.telemetry.attributes import ATTR_CRON_SCHEDULE as ATTR_CRON_SCHEDULE
from awa.telemetry.attributes import ATTR_ERROR_TYPE as ATTR_ERROR_TYPE
from awa.telemetry.attributes import ATTR_JOB_ID as ATTR_JOB_ID
from awa.telemetry.attributes import ATTR_JOB_KIND as ATTR_JOB_KIND
from awa.telemetry.attributes import ATTR_JOB_STATE as ATTR_JOB_STATE
from awa.telemetry.attributes import ATTR_LANE as ATTR_LANE
from awa.telemetry.attributes import ATTR_OUTBOX_SINK as ATTR_OUTBOX_SINK
from awa.telemetry.attributes import ATTR_OUTCOME as ATTR_OUTCOME
from awa.telemetry.attributes import ATTR_QUEUE as ATTR_QUEUE
from awa.telemetry.attributes import ATTR_RESCUE_REASON as ATTR_RESCUE_REASON
from awa.telemetry.catalogue import BRANCH_DELAYED as BRANCH_DELAYED
from awa.telemetry.catalogue import BRANCH_DURATION as BRANCH_DURATION
from awa.telemetry.catalogue import BRANCH_ERRORS as BRANCH_ERRORS
from awa.telemetry.catalogue import BRANCH_INTERVAL as BRANCH_INTERVAL
from awa.telemetry.catalogue import BRANCH_LATENESS as BRANCH_LATENESS
from awa.telemetry.catalogue import BRANCH_OVERRUN as BRANCH_OVERRUN
from awa.telemetry.catalogue import BRANCH_ROWS as BRANCH_ROWS
from awa.telemetry.catalogue import CATALOGUE as CATALOGUE
from awa.telemetry.catalogue import CRON_FIRED as CRON_FIRED
from awa.telemetry.catalogue import CRON_MISSED as CRON_MISSED
from awa.telemetry.catalogue import ELECTIONS as ELECTIONS
from awa.telemetry.catalogue import EVENT_LOOP_LAG as EVENT_LOOP_LAG
from awa.telemetry.catalogue import FLUSH_ERRORS as FLUSH_ERRORS
from awa.telemetry.catalogue import HANDLER_DURATION as HANDLER_DURATION
from awa.telemetry.catalogue import JOBS_CLAIMED as JOBS_CLAIMED
from awa.telemetry.catalogue import JOBS_CLAIMED_ON_INSERT as JOBS_CLAIMED_ON_INSERT
from awa.telemetry.catalogue import JOBS_FINISHED as JOBS_FINISHED
from awa.telemetry.catalogue import JOBS_INSERTED as JOBS_INSERTED
from awa.telemetry.catalogue import JOBS_RESCUED as JOBS_RESCUED
from awa.telemetry.catalogue import JOBS_STALE_RESULTS as JOBS_STALE_RESULTS
from awa.telemetry.catalogue import LEADER as LEADER
from awa.telemetry.catalogue import LOOP_ERRORS as LOOP_ERRORS
from awa.telemetry.catalogue import OUTBOX_BACKLOG as OUTBOX_BACKLOG
from awa.telemetry.catalogue import PICKUP_LATENCY as PICKUP_LATENCY
from awa.telemetry.catalogue import QUEUE_DEPTH as QUEUE_DEPTH
from awa.telemetry.catalogue import QUEUE_LAG as QUEUE_LAG
from awa.telemetry.catalogue import QUEUE_PAUSED as QUEUE_PAUSED
from awa.telemetry.catalogue import SPAN_BRANCH_TICK as SPAN_BRANCH_TICK
from awa.telemetry.catalogue import SPAN_JOB_RUN as SPAN_JOB_RUN
from awa.telemetry.catalogue import SPANS as SPANS
from awa.telemetry.catalogue import InstrumentKind as InstrumentKind
from awa.telemetry.catalogue import InstrumentSpec as InstrumentSpec
from awa.telemetry.catalogue import SpanSpec as SpanSpec
from awa.telemetry.catalogue import spec as spec
from awa.telemetry.export import Telemetry as Telemetry
from awa.telemetry.export import configure as configure
from awa.telemetry.instrumentation import Instruments as Instruments
from awa.telemetry.instrumentation import instruments as instruments
from awa.telemetry.tracing import SpanHandle as SpanHandle
from awa.telemetry.tracing import inject_trace_context as inject_trace_context

__all__ = (
    "ATTR_ACTION",
    "ATTR_ATTEMPT",
    "ATTR_BRANCH",
    "ATTR_CRON_SCHEDULE",
    "ATTR_ERROR_TYPE",
    "ATTR_JOB_ID",
    "ATTR_JOB_KIND",
    "ATTR_JOB_STATE",
    "ATTR_LANE",
    "ATTR_OUTBOX_SINK",
    "ATTR_OUTCOME",
    "ATTR_QUEUE",
    "ATTR_RESCUE_REASON",
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
    "SPANS",
    "SPAN_BRANCH_TICK",
    "SPAN_JOB_RUN",
    "InstrumentKind",
    "InstrumentSpec",
    "Instruments",
    "SpanHandle",
    "SpanSpec",
    "Telemetry",
    "configure",
    "inject_trace_context",
    "instruments",
    "spec",
)
