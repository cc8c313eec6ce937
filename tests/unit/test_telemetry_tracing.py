"""Trace context carried in job metadata, the span helpers, and the observable gauges.

The end-to-end span test (producer span → job execution span through PostgreSQL) is in
``test_telemetry_workload``; these pin down the edges: no span active, a caller's own
``traceparent``, malformed headers, errors versus cancellation in a maintenance tick, and
what the queue gauges report when a queue drains or leadership ends.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import awa
from awa.telemetry import SPAN_BRANCH_TICK, SPAN_JOB_RUN, Instruments, inject_trace_context
from awa.telemetry.tracing import extract_trace_context

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def traced() -> Iterator[tuple[Instruments, InMemorySpanExporter, trace.Tracer]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield (
        Instruments(MeterProvider(), tracer_provider=provider),
        exporter,
        provider.get_tracer("test"),
    )
    provider.shutdown()


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


# ------------------------------------------------------------------ trace context


def test_no_active_span_leaves_metadata_untouched() -> None:
    metadata = {"a": 1}
    assert inject_trace_context(metadata) is metadata
    assert inject_trace_context(None) is None


def test_active_span_adds_a_w3c_traceparent_without_mutating_the_input(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    _, _, tracer = traced
    metadata = {"a": 1}
    with tracer.start_as_current_span("produce") as span:
        injected = inject_trace_context(metadata)
        empty = inject_trace_context(None)
    context = span.get_span_context()
    assert metadata == {"a": 1}
    assert injected is not None and empty is not None
    assert injected["a"] == 1
    version, trace_id, span_id, flags = injected["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert (trace_id, span_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert set(empty) == {"traceparent"}  # no tracestate when empty, never baggage


def test_each_span_gets_its_own_traceparent_and_none_after_it_ends(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    """The carrier is cached per context (the bulk path reads it once per params()): a new
    span, a nested one, and leaving them must each be seen."""
    _, _, tracer = traced
    seen = []
    for name in ("first", "second"):
        with tracer.start_as_current_span(name) as span:
            outer = inject_trace_context(None)
            with tracer.start_as_current_span(f"{name}-child") as child:
                inner = inject_trace_context(None)
            again = inject_trace_context(None)
        assert outer is not None and inner is not None and again is not None
        assert outer["traceparent"].split("-")[2] == f"{span.get_span_context().span_id:016x}"
        assert inner["traceparent"].split("-")[2] == f"{child.get_span_context().span_id:016x}"
        assert again == outer
        seen.append(outer["traceparent"])
        assert inject_trace_context(None) is None  # the span ended: nothing to carry
    assert seen[0] != seen[1]


def test_a_callers_own_traceparent_wins(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    _, _, tracer = traced
    mine = {"traceparent": PARENT}
    with tracer.start_as_current_span("produce"):
        assert inject_trace_context(mine) is mine


def test_client_params_carry_the_producer_context(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    _, _, tracer = traced
    client = awa.Client("postgresql://localhost/unused")
    assert "traceparent" not in client.params("k", {}, metadata={"x": 1}).metadata_json
    with tracer.start_as_current_span("produce"):
        params = client.params("k", {}, metadata={"x": 1})
    assert '"traceparent"' in params.metadata_json
    assert '"x": 1' in params.metadata_json or '"x":1' in params.metadata_json
    with pytest.raises(awa.ValidationError), tracer.start_as_current_span("produce"):
        client.params("k", {}, metadata=["not", "a", "mapping"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"traceparent": "garbage"},
        {"traceparent": 42},
        {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
    ],
)
def test_missing_or_malformed_context_is_ignored(metadata: dict[str, Any] | None) -> None:
    assert extract_trace_context(metadata) is None


def test_job_span_is_a_child_of_the_carried_context_and_current_inside(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    instruments, exporter, tracer = traced
    with instruments.job_span(
        kind="k", queue="q", job_id=7, attempt=2, metadata={"traceparent": PARENT}
    ) as span:
        span.set_outcome("completed")
        with tracer.start_as_current_span("inside the handler"):
            pass
    job = only(exporter, SPAN_JOB_RUN)
    assert job.kind is SpanKind.CONSUMER
    assert job.parent is not None and f"{job.parent.span_id:016x}" == "b7ad6b7169203331"
    assert f"{job.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert dict(job.attributes or {}) == {
        "awa.job.kind": "k",
        "awa.queue": "q",
        "awa.job.id": 7,
        "awa.job.attempt": 2,
        "awa.outcome": "completed",
        # OpenTelemetry messaging semantic conventions (ADR 025)
        "messaging.system": "awa",
        "messaging.destination.name": "q",
        "messaging.operation.type": "process",
        "messaging.operation.name": "run",
        "messaging.message.id": "7",
    }
    inner = only(exporter, "inside the handler")
    assert inner.parent is not None and inner.parent.span_id == job.context.span_id


def test_job_span_without_context_is_a_root_even_under_another_span(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    instruments, exporter, tracer = traced
    with (
        tracer.start_as_current_span("runtime start"),
        instruments.job_span(kind="k", queue="q", job_id=1, attempt=1, metadata={}) as span,
    ):
        span.record_error("timeout")
    job = only(exporter, SPAN_JOB_RUN)
    assert job.parent is None
    assert job.status.status_code is StatusCode.ERROR
    assert dict(job.attributes or {})["error.type"] == "timeout"


def test_without_an_sdk_spans_cost_nothing_and_change_no_context() -> None:
    instruments = Instruments(MeterProvider())  # global (proxy, no-op) tracer provider
    before = trace.get_current_span()
    with instruments.job_span(
        kind="k", queue="q", job_id=1, attempt=1, metadata={"traceparent": PARENT}
    ) as span:
        assert trace.get_current_span() is before
        span.set_outcome("completed")
        span.record_error(RuntimeError("ignored"))


# --------------------------------------------------------------- maintenance ticks


async def test_branch_span_records_an_escaping_error_and_reraises(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    instruments, exporter, _ = traced
    with pytest.raises(KeyError), instruments.span_for_branch("slo", "promote_scheduled"):
        raise KeyError("boom")
    span = only(exporter, SPAN_BRANCH_TICK)
    assert span.parent is None
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {}) == {
        "awa.maintenance.lane": "slo",
        "awa.maintenance.branch": "promote_scheduled",
        "error.type": "KeyError",
    }
    assert [e.name for e in span.events] == ["exception"]


async def test_branch_span_does_not_call_cancellation_an_error(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    instruments, exporter, _ = traced
    with anyio.move_on_after(0.01), instruments.span_for_branch("hygiene", "cleanup"):
        await anyio.sleep(10)
    span = only(exporter, SPAN_BRANCH_TICK)
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()
    assert span.end_time is not None


# -------------------------------------------------------------------------- gauges


def gauge_points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[Any], float]:
    data = reader.get_metrics_data()
    out: dict[frozenset[Any], float] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for p in metric.data.data_points:
                        out[frozenset((p.attributes or {}).items())] = p.value  # type: ignore[union-attr]
    return out


def test_queue_gauges_fall_to_zero_when_a_queue_drains_and_vanish_after_leadership() -> None:
    reader = InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[reader]))
    instruments.observe_queue_stats(
        [
            {"queue": "a", "state": "available", "count": 3, "lag_s": Decimal("2.5")},
            {"queue": "a", "state": "running", "count": 1, "lag_s": None},
        ]
    )
    available = frozenset({("awa.queue", "a"), ("awa.job.state", "available")})
    running = frozenset({("awa.queue", "a"), ("awa.job.state", "running")})
    assert gauge_points(reader, "awa.queue.depth") == {available: 3, running: 1}
    assert gauge_points(reader, "awa.queue.lag") == {frozenset({("awa.queue", "a")}): 2.5}
    instruments.observe_queue_stats([{"queue": "a", "state": "running", "count": 2, "lag_s": None}])
    assert gauge_points(reader, "awa.queue.depth") == {available: 0, running: 2}
    assert gauge_points(reader, "awa.queue.lag") == {frozenset({("awa.queue", "a")}): 0.0}
    instruments.clear_leader_gauges()
    assert gauge_points(reader, "awa.queue.depth") == {}


def test_branch_gauges_follow_a_branch_into_its_new_lane() -> None:
    reader = InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[reader]))
    instruments.observe_branch("single", "cleanup", interval=60.0, delayed=True)
    instruments.observe_branch("hygiene", "cleanup", interval=60.0, delayed=False)
    key = frozenset({("awa.maintenance.lane", "hygiene"), ("awa.maintenance.branch", "cleanup")})
    assert gauge_points(reader, "awa.maintenance.branch.interval") == {key: 60.0}
    assert gauge_points(reader, "awa.maintenance.branch.delayed") == {key: 0.0}


def test_instruments_on_one_provider_share_their_gauges() -> None:
    """The SDK keeps only the first callback registered under a gauge name, so a second
    ``Instruments`` on the same provider must feed the same state."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    Instruments(provider)
    second = Instruments(provider)
    second.observe_outbox_backlog({"webhook": 12})
    assert gauge_points(reader, "awa.outbox.backlog") == {
        frozenset({("awa.outbox.sink", "webhook")}): 12.0
    }


def test_an_exception_with_a_broken_str_is_still_recorded(
    traced: tuple[Instruments, InMemorySpanExporter, trace.Tracer],
) -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("cannot render")

    instruments, exporter, _ = traced
    with instruments.job_span(kind="k", queue="q", job_id=1, attempt=1, metadata=None) as span:
        span.record_error(Broken())
    job = only(exporter, SPAN_JOB_RUN)
    assert job.status.status_code is StatusCode.ERROR
    assert job.status.description == "Broken"
    assert dict(job.attributes or {})["error.type"] == "Broken"


def test_a_sampled_out_job_span_still_parents_the_handlers_spans() -> None:
    """With a parent-based sampler, the handler's spans must follow the job span's "drop"
    decision instead of starting traces of their own."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instruments = Instruments(MeterProvider(), tracer_provider=provider)
    with instruments.job_span(kind="k", queue="q", job_id=1, attempt=1, metadata=None):
        current = trace.get_current_span().get_span_context()
        assert current.is_valid and not current.trace_flags.sampled
        with provider.get_tracer("handler").start_as_current_span("inside") as inner:
            assert not inner.is_recording()
    assert exporter.get_finished_spans() == ()


def test_spans_start_once_a_global_tracer_provider_appears() -> None:
    """Default instruments see a provider installed after them (within the recheck pace);
    global providers are set once per process, so this runs in a fresh interpreter."""
    script = textwrap.dedent(
        """
        import time
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from awa.telemetry import instrumentation, instruments

        instrumentation._TRACING_RECHECK = 0.05
        def recording():
            with instruments().job_span(kind="k", queue="q", job_id=1, attempt=1, metadata={}):
                return trace.get_current_span().is_recording()
        before = recording()
        trace.set_tracer_provider(TracerProvider())
        cached = recording()
        time.sleep(0.1)
        print(before, cached, recording())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"]
