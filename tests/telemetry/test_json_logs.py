"""JSON logs (issue 17): a failing handler run by a real runtime leaves one JSON line per
failed attempt, carrying the job, the traceback and the attempt's trace id.

The formatter is awa's own ``JsonFormatter`` on a handler of the root logger (what
``awa --log-format json`` installs); the runtime records spans into an in-memory exporter,
so each record's ``trace_id`` can be compared with the span the attempt really had. The
lines are captured as text and parsed back: every one must be a JSON object.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import awa
from awa.config import MaintenanceConfig
from awa.errors import ConfigError
from awa.model import TERMINAL_STATES
from awa.telemetry import SPAN_JOB_RUN, Instruments
from awa.telemetry.logs import JsonFormatter, log_format_from


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged at INFO or above, as JSON lines (the handler is removed after)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parse(stream: io.StringIO) -> list[dict[str, Any]]:
    records = []
    for line in stream.getvalue().splitlines():
        record = json.loads(line)  # every line is one JSON object, tracebacks included
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    return records


async def wait_finished(client: awa.Client, job_id: int) -> None:
    """Poll the job's state (it lives in the database: there is no event to wait on)."""
    with anyio.fail_after(30):
        while True:
            if (await client.get_job(job_id)).state in TERMINAL_STATES:
                return
            await anyio.sleep(0.05)


def cause() -> None:
    raise ValueError("the invoice total is negative")


async def test_each_failed_attempt_is_one_json_record_with_job_traceback_and_trace_id(
    database_url: str, json_lines: io.StringIO
) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = Instruments(MeterProvider(), tracer_provider=tracer_provider)
    client = awa.Client(database_url, metrics=metrics)

    @client.handler("invoice")
    async def invoice(ctx: awa.JobContext) -> None:
        logging.getLogger("billing").warning("checking invoice %s", ctx.job.args["n"])
        cause()

    config = awa.RuntimeConfig(
        queues={"default": 2}, backoff=awa.Backoff(base=0.05, cap=0.1, jitter=0.0)
    )
    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)  # promotes retries
    async with client, awa.Runtime(client, config, maintenance=maintenance):
        job = await client.insert("invoice", {"n": 42}, max_attempts=2)
        await wait_finished(client, job.id)
        assert (await client.get_job(job.id)).state == "failed"

    records = parse(json_lines)
    failures = [r for r in records if r.get("event") in ("job_retry", "job_failed")]
    assert [(r["event"], r["attempt"], r["level"]) for r in failures] == [
        ("job_retry", 1, "WARNING"),
        ("job_failed", 2, "ERROR"),
    ], records  # exactly one record per failed attempt (all records shown if not)
    attempt_spans = {
        dict(s.attributes or {})["awa.job.attempt"]: s
        for s in spans.get_finished_spans()
        if s.name == SPAN_JOB_RUN
    }
    for record in failures:
        assert record["job_id"] == job.id
        assert record["kind"] == "invoice" and record["queue"] == "default"
        assert record["error_type"] == "ValueError" and record["exc_type"] == "ValueError"
        assert "ValueError: the invoice total is negative" in record["traceback"]
        assert "in cause" in record["traceback"]  # the handler's own frames
        span = attempt_spans[record["attempt"]]
        assert record["trace_id"] == f"{span.context.trace_id:032x}"
        assert record["span_id"] == f"{span.context.span_id:016x}"
    assert failures[0]["trace_id"] != failures[1]["trace_id"]  # untraced job: a root per run

    # The handler's own log line knows its job too (the context set around the execution).
    own = [r for r in records if r["logger"] == "billing"]
    assert [r["message"] for r in own] == ["checking invoice 42"] * 2
    assert [(r["job_id"], r["attempt"]) for r in own] == [(job.id, 1), (job.id, 2)]
    assert all(r["kind"] == "invoice" and "trace_id" in r for r in own)
    # Maintenance decisions are structured records too.
    (gained,) = [r for r in records if r.get("event") == "leadership_gained"]
    assert gained["term"] >= 1 and gained["instance"]
    assert any(r.get("event") == "leadership_ended" for r in records)
    # Records outside any job carry no job fields.
    assert all("job_id" not in r for r in records if r not in failures and r not in own)


async def test_without_tracing_the_producer_trace_id_is_logged(
    database_url: str, json_lines: io.StringIO
) -> None:
    """No SDK in the worker: the trace id comes from the job's ``traceparent``, so the log
    line still joins the producer's trace."""
    producer_provider = TracerProvider()
    client = awa.Client(database_url)  # global no-op providers: no span is recorded

    @client.handler("doomed")
    async def doomed(ctx: awa.JobContext) -> None:
        raise RuntimeError("nope")

    async with client, awa.Runtime(client, awa.RuntimeConfig(), run_maintenance=False):
        with producer_provider.get_tracer("shop").start_as_current_span("checkout") as span:
            job = await client.insert("doomed", {}, max_attempts=1)
        await wait_finished(client, job.id)
    (record,) = [r for r in parse(json_lines) if r.get("event") == "job_failed"]
    assert record["job_id"] == job.id
    assert record["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert "span_id" not in record  # no span of the worker's own


def test_log_format_comes_from_the_option_then_the_environment() -> None:
    assert log_format_from(None, {}) == "text"
    assert log_format_from(None, {"AWA_LOG_FORMAT": "JSON"}) == "json"
    assert log_format_from("text", {"AWA_LOG_FORMAT": "json"}) == "text"
    with pytest.raises(ConfigError, match="AWA_LOG_FORMAT must be one of text, json"):
        log_format_from(None, {"AWA_LOG_FORMAT": "yaml"})
