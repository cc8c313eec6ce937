"""Acceptance (issue 7): exact instrument names, units and attributes after a real workload.

One scripted run on real PostgreSQL: a Runtime with a worker queue and the maintenance
leader, plus a user hygiene branch whose body takes 8× its interval (an induced overrun
episode, as in ``test_maint_starvation``). Five jobs cover every outcome (completed twice,
retried then completed, failed, cancelled); one is inserted inside a producer span. Metrics
are read through the SDK's ``InMemoryMetricReader``, spans through an in-memory exporter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.store import Store
from awa.telemetry import CATALOGUE, SPAN_JOB_RUN, InstrumentKind, Instruments, spec

SLOW_INTERVAL = 0.05
SLOW_BODY = 8 * SLOW_INTERVAL


class Slow(Branch):
    name = "slow"
    lane = HYGIENE

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(SLOW_BODY)
        return BranchResult({"slept": 1})


Attrs = frozenset[tuple[str, Any]]


def by_name(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        m.name: m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        if sm.scope.name == "awa"
        for m in sm.metrics
    }


def values(metric: Metric) -> dict[Attrs, float]:
    """Attribute set → value (sums and gauges) or count (histograms)."""
    out: dict[Attrs, float] = {}
    for point in metric.data.data_points:
        key = frozenset((point.attributes or {}).items())
        if isinstance(point, HistogramDataPoint):
            out[key] = point.count
        else:
            assert isinstance(point, NumberDataPoint), point  # a sum or a gauge
            out[key] = point.value
    return out


def attrs(**pairs: str) -> Attrs:
    return frozenset((k.replace("_", "."), v) for k, v in pairs.items())


def a(mapping: Mapping[str, Any]) -> Attrs:
    return frozenset(mapping.items())


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll ``predicate`` (the state lives in the database: there is no event to wait on)."""
    with anyio.fail_after(timeout):
        while True:
            if await predicate():
                return
            await anyio.sleep(0.05)


@pytest.fixture
async def workload(database_url: str) -> dict[str, Any]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = Instruments(MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider)
    producer_tracer = tracer_provider.get_tracer("producer")
    client = awa.Client(database_url, metrics=metrics)

    @client.handler("ok")
    async def ok(ctx: awa.JobContext) -> None:
        await anyio.sleep(0.01)

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        if ctx.job.attempt == 1:
            raise RuntimeError("first attempt fails")

    @client.handler("doomed")
    async def doomed(ctx: awa.JobContext) -> None:
        raise ValueError("always fails")

    @client.handler("bye")
    async def bye(ctx: awa.JobContext) -> awa.Cancel:
        return awa.Cancel("not needed any more")

    config = awa.RuntimeConfig(
        queues={"default": 4}, backoff=awa.Backoff(base=0.05, cap=0.1, jitter=0.0)
    )
    maintenance = MaintenanceConfig(
        mode="split", startup_jitter=0, election_interval=0.2, leader_check_interval=0.2
    )
    async with client:
        runtime = awa.Runtime(
            client, config, maintenance=maintenance, branches=[Slow(interval=SLOW_INTERVAL)]
        )
        async with runtime:
            leader = runtime.leader
            assert leader is not None
            with anyio.fail_after(15):
                await leader.wait_until_leader()
            with producer_tracer.start_as_current_span("checkout") as producer:
                traced = await client.insert("ok", {"traced": True})
            ids = [
                traced.id,
                (await client.insert("ok", {})).id,
                (await client.insert("flaky", {})).id,
                (await client.insert("doomed", {}, max_attempts=1)).id,
                (await client.insert("bye", {})).id,
            ]
            # Two jobs that stay live, so queue_stats has rows: one far in the future, one
            # in a queue nobody serves (it ages: lag > 0).
            await client.insert("ok", {}, delay=3600)
            await client.insert("nobody", {}, queue="idle")

            async def all_done() -> bool:
                jobs = [await client.get_job(i) for i in ids]
                return all(j.state in awa.model.TERMINAL_STATES for j in jobs)

            async def overran() -> bool:
                return leader.stats["slow"].tracker.episodes >= 1

            await wait_until(all_done)
            await wait_until(overran)
        slow = leader.stats["slow"]
        store = await Store.open(database_url, min_size=1, max_size=1)
        try:
            rows = await store.maintenance.refresh_queue_stats()
        finally:
            await store.close()
        metrics.observe_queue_stats(rows)
        jobs = {i: await client.get_job(i) for i in ids}
    return {
        "metrics": by_name(reader),
        "spans": list(spans.get_finished_spans()),
        "producer": producer,
        "traced": traced,
        "jobs": jobs,
        "ids": ids,
        "slow_runs": slow.runs,
        "slow_episodes": slow.tracker.episodes,
        "queue_rows": rows,
    }


async def test_every_recorded_metric_matches_its_catalogue_entry(workload: dict[str, Any]) -> None:
    metrics: dict[str, Metric] = workload["metrics"]
    catalogued = {s.name for s in CATALOGUE}
    assert set(metrics) <= catalogued, "an instrument outside the catalogue was recorded"
    kinds = {
        InstrumentKind.COUNTER: (Sum, True),
        InstrumentKind.UP_DOWN_COUNTER: (Sum, False),
        InstrumentKind.HISTOGRAM: (Histogram, None),
        InstrumentKind.OBSERVABLE_GAUGE: (Gauge, None),
    }
    for name, metric in metrics.items():
        entry = spec(name)
        assert metric.unit == entry.unit, name
        data_type, monotonic = kinds[entry.kind]
        assert isinstance(metric.data, data_type), name
        if monotonic is not None:
            assert isinstance(metric.data, Sum) and metric.data.is_monotonic is monotonic, name
        for point in metric.data.data_points:
            assert set(point.attributes or {}) == set(entry.attributes), name
    # What this workload must have exercised (cron, outbox and rescues are not in it).
    assert {
        "awa.jobs.inserted",
        "awa.jobs.claimed",
        "awa.jobs.finished",
        "awa.handler.duration",
        "awa.jobs.pickup_latency",
        "awa.queue.depth",
        "awa.queue.lag",
        "awa.maintenance.branch.duration",
        "awa.maintenance.branch.lateness",
        "awa.maintenance.branch.overrun",
        "awa.maintenance.branch.rows",
        "awa.maintenance.elections",
        "awa.maintenance.leader",
    } <= set(metrics)


async def test_job_counters_and_histograms_have_exact_values(workload: dict[str, Any]) -> None:
    metrics: dict[str, Metric] = workload["metrics"]
    default = attrs(awa_queue="default")
    assert values(metrics["awa.jobs.inserted"]) == {default: 6, attrs(awa_queue="idle"): 1}
    assert values(metrics["awa.jobs.claimed"]) == {default: 6}  # flaky ran twice
    # By kind; completed/retried/failed exist at 0 from start for every kind declared on
    # the served queue (ADR 025), the other outcomes appear when they happen.
    finished: dict[Attrs, float] = {
        a({"awa.queue": "default", "awa.job.kind": kind, "awa.outcome": outcome}): 0
        for kind in ("ok", "flaky", "doomed", "bye")
        for outcome in ("completed", "retried", "failed")
    }

    def job(kind: str, outcome: str) -> Attrs:
        return a({"awa.queue": "default", "awa.job.kind": kind, "awa.outcome": outcome})

    finished |= {
        job("ok", "completed"): 2,
        job("flaky", "retried"): 1,
        job("flaky", "completed"): 1,
        job("doomed", "failed"): 1,
        job("bye", "cancelled"): 1,
    }
    assert values(metrics["awa.jobs.finished"]) == finished
    assert values(metrics["awa.handler.duration"]) == {
        a({"awa.queue": "default", "awa.job.kind": "ok"}): 2,
        a({"awa.queue": "default", "awa.job.kind": "flaky"}): 2,
        a({"awa.queue": "default", "awa.job.kind": "doomed"}): 1,
        a({"awa.queue": "default", "awa.job.kind": "bye"}): 1,
    }
    assert values(metrics["awa.jobs.pickup_latency"]) == {default: 6}
    handler = metrics["awa.handler.duration"].data
    assert isinstance(handler, Histogram)
    ok_point = next(p for p in handler.data_points if (p.attributes or {})["awa.job.kind"] == "ok")
    assert ok_point.sum >= 2 * 0.01  # both ok handlers slept 10 ms
    assert list(ok_point.explicit_bounds)[:3] == [0.0005, 0.001, 0.0025]  # seconds buckets


async def test_leadership_and_overrun_episode_are_counted(workload: dict[str, Any]) -> None:
    metrics: dict[str, Metric] = workload["metrics"]
    assert values(metrics["awa.maintenance.elections"]) == {frozenset(): 1}
    assert values(metrics["awa.maintenance.leader"]) == {frozenset(): 0}  # +1 then -1 at exit
    slow = a({"awa.maintenance.lane": "hygiene", "awa.maintenance.branch": "slow"})
    assert workload["slow_episodes"] >= 1
    overrun = slow | {("branch", "slow")}  # plain `branch` label too (issue 3/7 wording)
    overruns = values(metrics["awa.maintenance.branch.overrun"])
    assert overruns[overrun] == workload["slow_episodes"]
    # Every other branch's series exists at 0 from the start of its lane (ADR 025).
    others = {dict(k)["branch"]: v for k, v in overruns.items() if k != overrun}
    assert {"promote_scheduled", "cron_evaluate", "queue_stats"} <= set(others)
    assert set(others.values()) == {0}
    assert values(metrics["awa.maintenance.branch.duration"])[slow] == workload["slow_runs"]
    assert values(metrics["awa.maintenance.branch.lateness"])[slow] == workload["slow_runs"]
    rows = values(metrics["awa.maintenance.branch.rows"])
    assert rows[slow | {("awa.maintenance.action", "slept")}] == workload["slow_runs"]
    duration = metrics["awa.maintenance.branch.duration"].data
    assert isinstance(duration, Histogram)
    slow_point = next(
        p for p in duration.data_points if frozenset((p.attributes or {}).items()) == slow
    )
    assert slow_point.min >= SLOW_BODY * 0.9
    recorded = [dict(k) for k in values(metrics["awa.maintenance.branch.duration"])]
    assert {r["awa.maintenance.lane"] for r in recorded} == {"slo", "hygiene"}
    assert {"slow", "promote_scheduled"} <= {r["awa.maintenance.branch"] for r in recorded}


async def test_queue_gauges_reflect_the_queue_stats_rows(workload: dict[str, Any]) -> None:
    metrics: dict[str, Metric] = workload["metrics"]
    expected = {
        a({"awa.queue": r["queue"], "awa.job.state": r["state"]}): r["count"]
        for r in workload["queue_rows"]
    }
    assert expected == {
        a({"awa.queue": "default", "awa.job.state": "scheduled"}): 1,
        a({"awa.queue": "idle", "awa.job.state": "available"}): 1,
    }
    assert values(metrics["awa.queue.depth"]) == expected
    (idle,) = [r for r in workload["queue_rows"] if r["queue"] == "idle"]
    lag = values(metrics["awa.queue.lag"])
    assert lag == {attrs(awa_queue="default"): 0.0, attrs(awa_queue="idle"): float(idle["lag_s"])}
    assert lag[attrs(awa_queue="idle")] > 0


async def test_one_span_per_execution_continuing_the_producer_trace(
    workload: dict[str, Any],
) -> None:
    spans: list[ReadableSpan] = [s for s in workload["spans"] if s.name == SPAN_JOB_RUN]
    assert len(spans) == 6
    by_job: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        assert span.kind is SpanKind.CONSUMER
        attributes = dict(span.attributes or {})
        assert {"awa.job.kind", "awa.queue", "awa.job.id", "awa.job.attempt", "awa.outcome"} <= set(
            attributes
        )
        job_id = attributes["awa.job.id"]
        assert isinstance(job_id, int), job_id
        by_job.setdefault(job_id, []).append(span)
    assert Counter(len(v) for v in by_job.values()) == Counter({1: 4, 2: 1})

    producer = workload["producer"].get_span_context()
    traced_job = workload["jobs"][workload["traced"].id]
    assert traced_job.metadata["traceparent"].split("-")[1] == f"{producer.trace_id:032x}"
    (traced_span,) = by_job[traced_job.id]
    assert traced_span.parent is not None
    assert traced_span.parent.span_id == producer.span_id
    assert traced_span.context.trace_id == producer.trace_id
    for job_id, job_spans in by_job.items():
        if job_id != traced_job.id:
            assert all(s.parent is None for s in job_spans), "untraced jobs start root spans"
            assert "traceparent" not in workload["jobs"][job_id].metadata

    outcomes = {
        (dict(s.attributes or {})["awa.job.kind"], dict(s.attributes or {})["awa.job.attempt"]): s
        for s in spans
    }
    first, second = outcomes[("flaky", 1)], outcomes[("flaky", 2)]
    assert first.status.status_code is StatusCode.ERROR
    assert dict(first.attributes or {})["error.type"] == "RuntimeError"
    assert dict(first.attributes or {})["awa.outcome"] == "retried"
    assert [e.name for e in first.events] == ["exception"]
    assert dict(second.attributes or {})["awa.outcome"] == "completed"
    assert second.status.status_code is StatusCode.UNSET
    doomed = outcomes[("doomed", 1)]
    assert dict(doomed.attributes or {})["awa.outcome"] == "failed"
    assert doomed.status.status_code is StatusCode.ERROR
    bye = outcomes[("bye", 1)]
    assert dict(bye.attributes or {})["awa.outcome"] == "cancelled"
    assert bye.status.status_code is StatusCode.UNSET
