"""Spans for job executions and maintenance ticks, and trace context carried in jobs.

A producer's trace continues into the job: when ``Client.params`` runs inside an active
span, the W3C ``traceparent`` (and ``tracestate``, when set) go into the job's metadata; the
dispatcher's execution span is then a *child* of that producer span, on every attempt. A
user-supplied ``traceparent`` is never overwritten (the caller knows better which trace the
job belongs to). Only the W3C trace-context fields are written, never baggage, so metadata
stays small and free of application secrets.

Callers outside ``awa.telemetry`` never touch OpenTelemetry types: they get a ``SpanHandle``
with the three things they need (set an attribute, record an error, set the outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import Token
from types import TracebackType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from awa.telemetry.attributes import (
    ATTR_ATTEMPT,
    ATTR_BRANCH,
    ATTR_ERROR_TYPE,
    ATTR_JOB_ID,
    ATTR_JOB_KIND,
    ATTR_LANE,
    ATTR_MESSAGING_DESTINATION,
    ATTR_MESSAGING_MESSAGE_ID,
    ATTR_MESSAGING_OPERATION_NAME,
    ATTR_MESSAGING_OPERATION_TYPE,
    ATTR_MESSAGING_SYSTEM,
    ATTR_OUTCOME,
    ATTR_QUEUE,
)
from awa.telemetry.catalogue import (
    SPAN_BRANCH_TICK,
    SPAN_JOB_RUN,
)

__all__ = [
    "NO_SPAN",
    "TRACE_KEYS",
    "SpanHandle",
    "branch_span",
    "extract_trace_context",
    "inject_trace_context",
    "job_span",
]

TRACE_KEYS = ("traceparent", "tracestate")
"""Metadata keys that carry a job's trace context (W3C Trace Context header names)."""

_PROPAGATOR = TraceContextTextMapPropagator()


class SpanHandle:
    """The part of a span awa's own modules may touch."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def set_outcome(self, outcome: str) -> None:
        self._span.set_attribute(ATTR_OUTCOME, outcome)

    def record_error(self, error: BaseException | str) -> None:
        """Mark the span failed: an exception is recorded as an event; a string (e.g.
        ``"timeout"``) becomes the ``error.type``. Never raises: telemetry must not fail a
        job, even for an exception whose ``__str__`` is broken."""
        if not self._span.is_recording():
            return
        if isinstance(error, BaseException):
            error_type = type(error).__name__
            try:
                description = f"{error_type}: {error}"
                self._span.record_exception(error)
            except Exception:
                description = error_type
        else:
            error_type = description = error
        self._span.set_attribute(ATTR_ERROR_TYPE, error_type)
        self._span.set_status(Status(StatusCode.ERROR, description[:500]))


def inject_trace_context(metadata: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``metadata`` plus the current span's W3C trace context, or ``metadata`` unchanged
    when no span is active, it already carries a ``traceparent``, or it is not a mapping
    (validation reports that later)."""
    if metadata is not None and not isinstance(metadata, Mapping):
        return metadata
    if metadata is not None and "traceparent" in metadata:
        return metadata
    carrier = _current_carrier()
    if carrier is None:
        return metadata
    return {**(metadata or {}), **carrier}


#: The last context seen and its carrier (None: no valid span). A producer inserts many
#: jobs under one context (a bulk insert builds thousands of params in one span, or in
#: none), and reading the current span through the API cost a third of ``params()``
#: (issue 16's bulk profile). Keyed by the ``Context`` object itself: contexts are
#: immutable and every attach makes a new one, so a changed span is never missed. One
#: tuple, replaced whole, so threads can share it.
_last_seen: tuple[object, dict[str, str] | None] = (object(), None)


def _current_carrier() -> dict[str, str] | None:
    global _last_seen
    current = context.get_current()
    seen, carrier = _last_seen
    if current is seen:
        return carrier
    carrier = None
    if trace.get_current_span(current).get_span_context().is_valid:
        injected: dict[str, str] = {}
        _PROPAGATOR.inject(injected, context=current)
        if "traceparent" in injected:
            carrier = injected
    _last_seen = (current, carrier)
    return carrier


def extract_trace_context(metadata: Mapping[str, Any] | None) -> context.Context | None:
    """The producer's context from a job's metadata, or ``None`` when there is none (or it
    is malformed: a bad header must never fail the job)."""
    if not metadata:
        return None
    carrier = {k: v for k in TRACE_KEYS if isinstance(v := metadata.get(k), str)}
    if "traceparent" not in carrier:
        return None
    extracted = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


def job_span(
    tracer: trace.Tracer,
    *,
    kind: str,
    queue: str,
    job_id: int,
    attempt: int,
    metadata: Mapping[str, Any] | None,
) -> AbstractContextManager[SpanHandle]:
    """A consumer span around one job execution, current while the handler runs (so the
    handler's own spans nest under it), child of the producer's context when the job
    carries one, else a root span."""
    parent = extract_trace_context(metadata)
    attributes: dict[str, str | int] = {
        ATTR_JOB_KIND: kind,
        ATTR_QUEUE: queue,
        ATTR_JOB_ID: job_id,
        ATTR_ATTEMPT: attempt,
        # OpenTelemetry messaging conventions: a job system is a queueing system, so
        # generic messaging dashboards and trace views understand awa's spans too.
        ATTR_MESSAGING_SYSTEM: "awa",
        ATTR_MESSAGING_DESTINATION: queue,
        ATTR_MESSAGING_OPERATION_TYPE: "process",
        ATTR_MESSAGING_OPERATION_NAME: "run",
        ATTR_MESSAGING_MESSAGE_ID: str(job_id),
    }
    return _SpanScope(tracer, SPAN_JOB_RUN, SpanKind.CONSUMER, attributes, parent)


def branch_span(tracer: trace.Tracer, lane: str, branch: str) -> AbstractContextManager[SpanHandle]:
    """An internal root span around one maintenance branch body. An exception leaving the
    block is recorded and re-raised; cancellation is not an error and is not recorded."""
    attributes: dict[str, str | int] = {ATTR_LANE: lane, ATTR_BRANCH: branch}
    return _SpanScope(tracer, SPAN_BRANCH_TICK, SpanKind.INTERNAL, attributes, None)


class _SpanScope:
    """Start a span and make it current for the block; a plain class, not a generator
    context manager, because it wraps every job execution.

    A span that was sampled out is still made current, so the handler's own spans inherit
    the decision (a parent-based sampler drops them too instead of starting new traces);
    only a no-op tracer's invalid span is skipped entirely.

    ``parent`` ``None`` makes a root span: a job or a tick is not part of whatever span
    happened to be current when the runtime started. An ``Exception`` leaving the block is
    recorded on the span; cancellation (a ``BaseException``) is not an error.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        kind: SpanKind,
        attributes: dict[str, str | int],
        parent: context.Context | None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._parent = parent
        self._span: trace.Span | None = None
        self._token: Token[context.Context] | None = None

    def __enter__(self) -> SpanHandle:
        parent = context.Context() if self._parent is None else self._parent
        span = self._tracer.start_span(
            self._name, context=parent, kind=self._kind, attributes=self._attributes
        )
        if not span.get_span_context().is_valid:
            return _NOT_RECORDING
        self._span = span
        self._token = context.attach(trace.set_span_in_context(span))
        return SpanHandle(span)

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        span, token = self._span, self._token
        if span is None or token is None:
            return
        try:
            if isinstance(e, Exception):
                SpanHandle(span).record_error(e)
        finally:
            context.detach(token)
            span.end()


_NOT_RECORDING = SpanHandle(trace.INVALID_SPAN)

NO_SPAN: AbstractContextManager[SpanHandle] = nullcontext(_NOT_RECORDING)
"""What the span helpers return when tracing is off: enters to a handle that does nothing
(reusable: ``nullcontext`` keeps no state)."""
